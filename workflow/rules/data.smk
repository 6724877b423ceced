# Every rule's mem_mb and runtime (minutes) hold at course size: measured peaks up to 1.4 GB and
# under a minute each (README, Benchmark).


rule synthesize:
    output:
        npz="results/data/synthetic/mars_synthetic.npz",
        test_masks="results/data/synthetic/test_masks.npz",
    log:
        "logs/synthesize.log",
    benchmark:
        "benchmarks/synthesize.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **config["synthetic"],
    script:
        "../scripts/synthesize.py"


rule load_raw:
    input:
        raw_data_file,
    output:
        labelled="results/data/labelled.npz",
        test="results/data/test.npz",
    log:
        "logs/load_raw.log",
    benchmark:
        "benchmarks/load_raw.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        # 1.0 GB with the course file: its float64 test images (657 MB) and their uint8 copy
        mem_mb=1500,
        runtime=10,
    script:
        "../scripts/load_raw.py"


rule filter_outliers:
    input:
        "results/data/labelled.npz",
    output:
        filtered="results/data/filtered.npz",
        summary="results/data/outliers.json",
    log:
        "logs/filter_outliers.log",
    benchmark:
        "benchmarks/filter_outliers.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        **config["outliers"],
    script:
        "../scripts/filter_outliers.py"


rule split:
    input:
        split_input(),
    output:
        train="results/data/train.npz",
        val="results/data/val.npz",
    log:
        "logs/split.log",
    benchmark:
        "benchmarks/split.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        val_fraction=config["split"]["val_fraction"],
        seed=config["split"]["seed"],
        stratify_on_big_rock=config["split"]["stratify_on_big_rock"],
    script:
        "../scripts/split.py"


rule augment:
    input:
        augment_input(),
    output:
        AUGMENTED,
    log:
        "logs/augment.log",
    benchmark:
        "benchmarks/augment.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        **config["augmentation"],
    script:
        "../scripts/augment.py"
