# The report's figures. `snakemake --report results/report.html` gathers them, with the comparison
# table, into one self-contained HTML page (captions in workflow/report/).


report: "../report/workflow.rst"


rule figure_predictions:
    input:
        val="results/data/val.npz",
        postprocessed=figure_postprocessed_files,
    output:
        report(
            "results/figures/predictions/{variant}.png",
            caption="../report/predictions.rst",
            category="Predictions",
            labels={"variant": "{variant}"},
        ),
    log:
        "logs/figure_predictions/{variant}.log",
    benchmark:
        "benchmarks/figure_predictions/{variant}.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        postprocessed=figure_postprocessed,
        seed=SEEDS[0],
    script:
        "../scripts/figure_predictions.py"


rule figure_training_curves:
    input:
        figure_histories_files,
    output:
        report(
            "results/figures/training_curves/{variant}.png",
            caption="../report/training_curves.rst",
            category="Training curves",
            labels={"variant": "{variant}"},
        ),
    log:
        "logs/figure_training_curves/{variant}.log",
    benchmark:
        "benchmarks/figure_training_curves/{variant}.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        histories=figure_histories,
        target=variant_target,
    script:
        "../scripts/figure_training_curves.py"


rule figure_confusion:
    input:
        figure_scores_files,
    output:
        report(
            "results/figures/confusion/{variant}.png",
            caption="../report/confusion.rst",
            category="Confusion matrices",
            labels={"variant": "{variant}"},
        ),
    log:
        "logs/figure_confusion/{variant}.log",
    benchmark:
        "benchmarks/figure_confusion/{variant}.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        scores=figure_scores,
    script:
        "../scripts/figure_confusion.py"


rule figure_class_distribution:
    input:
        labelled="results/data/labelled.npz",
        filtered="results/data/filtered.npz",
    output:
        report(
            "results/figures/class_distribution.png",
            caption="../report/class_distribution.rst",
            category="Data",
            labels={"figure": "class distribution"},
        ),
    log:
        "logs/figure_class_distribution.log",
    benchmark:
        "benchmarks/figure_class_distribution.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/figure_class_distribution.py"


rule figure_outliers:
    input:
        summary="results/data/outliers.json",
        labelled="results/data/labelled.npz",
    output:
        report(
            "results/figures/outliers.png",
            caption="../report/outliers.rst",
            category="Data",
            labels={"figure": "outlier filter"},
        ),
    log:
        "logs/figure_outliers.log",
    benchmark:
        "benchmarks/figure_outliers.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        max_group_size=config["outliers"]["max_group_size"],
    script:
        "../scripts/figure_outliers.py"
