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
        # At course size on a CPU, in passes of 8 images (micro_batch_size: auto), the peak is
        # 1.8-2.6 GB; whole batches there take 2.7 GB (separate) to 4.3 GB (parallel_symmetric)
        # and 11.3 GB (multipath, batch 128): for micro_batch_size: null on a CPU,
        # --set-resources train:mem_mb=12000 (on Slurm: in the profile). A GPU keeps the
        # activations in its own memory; the rest is headroom for its runtime libraries. A
        # training longer than 12 h is resubmitted and resumes (profiles/slurm: retries).
        mem_mb=6000,
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
        # Course size on a CPU, with TTA, 64 images per pass, the label maps of every image
        # held: 2.0 GB (unet) to 2.8 GB (multipath); headroom for a GPU's runtime libraries.
        mem_mb=4000,
        runtime=120,
    params:
        **config["prediction"],
        big_rock_threshold=helper_threshold,
        part_sizes=member_part_sizes,
    script:
        "../scripts/predict.py"
