rule postprocess:
    input:
        "results/predictions/{variant}/seed{seed}.npz",
    output:
        "results/postprocessed/{variant}/seed{seed}/tta_{tta}/{method}.npz",
    log:
        "logs/postprocess/{variant}/seed{seed}/tta_{tta}/{method}.log",
    benchmark:
        "benchmarks/postprocess/{variant}/seed{seed}/tta_{tta}/{method}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        all_background_label=config["postprocessing"]["all_background_label"],
        tta=tta_on,
    script:
        "../scripts/postprocess.py"


rule score:
    input:
        predicted="results/postprocessed/{variant}/seed{seed}/tta_{tta}/{method}.npz",
        val="results/data/val.npz",
    output:
        "results/scores/{variant}/seed{seed}/tta_{tta}/{method}.json",
    log:
        "logs/score/{variant}/seed{seed}/tta_{tta}/{method}.log",
    benchmark:
        "benchmarks/score/{variant}/seed{seed}/tta_{tta}/{method}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
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
            labels={"table": "all columns, full precision (CSV)"},
        ),
        md="results/comparison.md",
        html=report(
            "results/comparison.html",
            caption="../report/comparison.rst",
            category="Comparison",
            labels={"table": "mean ± std over seeds"},
        ),
    log:
        "logs/comparison_table.log",
    benchmark:
        "benchmarks/comparison_table.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        records=comparison_records(),
    script:
        "../scripts/comparison_table.py"


rule submission:
    input:
        table="results/comparison.csv",
        postprocessed=list(submission_sources(PREDICTED).values()),
    output:
        "results/submission.csv",
    log:
        "logs/submission.log",
    benchmark:
        "benchmarks/submission.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        postprocessed=submission_sources(PREDICTED),
    script:
        "../scripts/submission.py"


# One submission per variant: its first seed, post-processed by its best method.
rule variant_submission:
    input:
        table="results/comparison.csv",
        postprocessed=variant_postprocessed_files,
    output:
        "results/submissions/{variant}.csv",
    log:
        "logs/variant_submission/{variant}.log",
    benchmark:
        "benchmarks/variant_submission/{variant}.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        postprocessed=variant_submission_sources,
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
    benchmark:
        "benchmarks/score_submission.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/score_submission.py"
