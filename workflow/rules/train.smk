rule train:
    input:
        train=training_input(),
        val="results/data/val.npz",
    output:
        model="results/models/{variant}/seed{seed}/member{member}.keras",
        history="results/training/{variant}/seed{seed}/member{member}_history.csv",
        info="results/training/{variant}/seed{seed}/member{member}_info.json",
    log:
        "logs/train/{variant}/seed{seed}/member{member}.log",
    benchmark:
        "benchmarks/train/{variant}/seed{seed}/member{member}.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        gpu=1,
        # At course size on a CPU (activations in host memory) the peak is 3.1 GB (unet) to
        # 11.1 GB (multipath, batch 128); a GPU keeps them in its own memory. A training
        # longer than 12 h is resubmitted and resumes (profiles/slurm: retries).
        mem_mb=12000,
        runtime=720,
    params:
        settings=member_settings,
        seed=member_seed,
        # Kept outside the outputs, which Snakemake deletes before a rerun: an interrupted
        # training resumes from its last completed epoch.
        checkpoint_dir="results/checkpoints/{variant}/seed{seed}/member{member}",
    script:
        "../scripts/train.py"


rule predict:
    input:
        models=member_models,
        big_rock_helper=helper_models,
        val="results/data/val.npz",
        test="results/data/test.npz",
    output:
        "results/predictions/{variant}/seed{seed}.npz",
    log:
        "logs/predict/{variant}/seed{seed}.log",
    benchmark:
        "benchmarks/predict/{variant}/seed{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        gpu=1,
        # Course size on a CPU, with TTA: 2.5 GB (unet) to 4.1 GB (multipath).
        mem_mb=5000,
        runtime=120,
    params:
        **config["prediction"],
        big_rock_threshold=helper_threshold,
    script:
        "../scripts/predict.py"
