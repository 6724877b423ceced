rule postprocess:
    input:
        "results/predictions/{variant}/seed{seed}.npz",
    output:
        "results/postprocessed/{variant}/seed{seed}/{method}.npz",
    log:
        "logs/postprocess/{variant}/seed{seed}/{method}.log",
    conda:
        "../../envs/data.yaml"
    params:
        all_background_label=config["postprocessing"]["all_background_label"],
    script:
        "../scripts/postprocess.py"


rule score:
    input:
        predicted="results/postprocessed/{variant}/seed{seed}/{method}.npz",
        val="results/data/val.npz",
    output:
        "results/scores/{variant}/seed{seed}/{method}.json",
    log:
        "logs/score/{variant}/seed{seed}/{method}.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/score.py"


rule comparison_table:
    input:
        comparison_inputs,
    output:
        csv=report(
            "results/comparison.csv",
            caption="../report/comparison.rst",
            category="Comparison",
        ),
        md="results/comparison.md",
    log:
        "logs/comparison_table.log",
    conda:
        "../../envs/report.yaml"
    params:
        records=comparison_records(),
    script:
        "../scripts/comparison_table.py"


rule submission:
    input:
        table="results/comparison.csv",
        postprocessed=expand(
            "results/postprocessed/{variant}/seed{seed}/{method}.npz",
            variant=PREDICTED,
            seed=SEEDS[0],
            method=METHODS,
        ),
    output:
        "results/submission.csv",
    log:
        "logs/submission.log",
    conda:
        "../../envs/data.yaml"
    params:
        seed=SEEDS[0],
    script:
        "../scripts/submission.py"


rule score_submission:
    input:
        submission="results/submission.csv",
        test_masks="results/data/synthetic/test_masks.npz",
    output:
        "results/submission_score.json",
    log:
        "logs/score_submission.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/score_submission.py"
