# The Mars terrain segmentation study (AN2DL 2024-2025 Homework 2) as one reproducible DAG:
# raw npz -> outlier filter -> split -> augmentation -> train each variant -> predict
# -> post-process -> score -> comparison table, submissions and the report's figures.


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/tuning.smk"


# Targets only: nothing to submit to a cluster.
localrules:
    all,
    tuning,


rule all:
    default_target: True
    input:
        final_outputs(),
