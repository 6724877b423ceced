# Optional, not part of `rule all`: seed 001's Optuna search over one variant's learning rate,
# weight decay, focal gamma and Big Rock weight. Run it with
#   snakemake tuning --cores 8 --resources gpu=1
# and copy the `config:` of results/tuning/{variant}/best.yaml into the variant in config.yaml.


rule tuning:
    input:
        tuned_variants_outputs,


rule tune:
    input:
        train=training_input(),
        val="results/data/val.npz",
    output:
        trials="results/tuning/{variant}/trials.csv",
        best="results/tuning/{variant}/best.yaml",
    log:
        "logs/tune/{variant}.log",
    benchmark:
        "benchmarks/tune/{variant}.tsv"
    conda:
        "../../envs/tune.yaml"
    resources:
        gpu=1,
        # As train: each trial trains one model, one after the other in this process.
        mem_mb=6000,
        runtime=1440,
    params:
        settings=first_member_settings,
        space=config["tuning"]["search_space"],
        n_trials=config["tuning"]["n_trials"],
        epochs=config["tuning"]["epochs"],
        seed=config["tuning"]["seed"],
        # Kept outside the outputs: a stopped search goes on from its finished trials.
        journal_dir="results/checkpoints/tuning/{variant}",
    script:
        "../scripts/tune.py"
