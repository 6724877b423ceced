# Optional, not part of `rule all`: seed 001's Optuna search over one variant's learning rate,
# weight decay, focal gamma and Big Rock weight. Run it with
#   snakemake --cores 8 --resources gpu=1 tuning
# and copy results/tuning/{variant}/best.yaml's values into config.yaml.

unknown = [v for v in config["tuning"]["variants"] if v not in SCORED_VARIANTS]
if unknown:
    raise ValueError(
        f"config: tuning.variants lists {unknown}, which are not trained variants. "
        f"Fix: use names defined under `variants:` ({', '.join(SCORED_VARIANTS)})."
    )


rule tuning:
    input:
        expand(
            "results/tuning/{variant}/best.yaml", variant=config["tuning"]["variants"]
        ),


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
        settings=lambda wildcards: members(wildcards.variant)[0],
        space=config["tuning"]["search_space"],
        n_trials=config["tuning"]["n_trials"],
        epochs=config["tuning"]["epochs"],
        seed=config["tuning"]["seed"],
    script:
        "../scripts/tune.py"
