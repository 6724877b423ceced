import copy
import os
import sys

from snakemake.utils import validate

# The Snakefile reads architecture names from the project's package (keras-free part). The rules'
# scripts import the installed package: `pip install -e .` in .venv (make setup), and each conda
# env's post-deploy script for --sdm conda.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from marsseg.models import ARCHITECTURE_NAMES, describe  # noqa: E402

validate(config, workflow.source_path("../schemas/config.schema.yaml"))


def check_variants():
    for name in config["variants"]:
        for member in members(name):
            if member["architecture"] not in ARCHITECTURE_NAMES:
                raise ValueError(
                    f"config: variant '{name}' names architecture '{member['architecture']}', "
                    f"which does not exist. Fix: use one of {', '.join(ARCHITECTURE_NAMES)}."
                )
    for name, parts in config["ensembles"].items():
        if name in config["variants"]:
            raise ValueError(
                f"config: ensemble '{name}' has the name of a variant. Fix: rename the ensemble."
            )
        unknown = [part for part in parts if part not in config["variants"]]
        if unknown:
            raise ValueError(
                f"config: ensemble '{name}' lists unknown variant(s) {unknown}. "
                f"Fix: use variants defined under `variants:` ({', '.join(config['variants'])})."
            )


def members(variant):
    """The separately trained members of a variant, each with its settings fully resolved."""
    settings = config["variants"][variant]
    resolved = []
    for index, overrides in enumerate(settings.get("members", [{}])):
        training = {**config["training"], **settings.get("training", {})}
        training.update(overrides.get("training", {}))
        resolved.append(
            {
                "architecture": overrides.get("architecture", settings["architecture"]),
                "params": copy.deepcopy(
                    overrides.get("params", settings.get("params", {}))
                ),
                "loss": copy.deepcopy(overrides.get("loss", settings["loss"])),
                "training": training,
                "seed_offset": overrides.get("seed_offset", 1000 * index),
            }
        )
    return resolved


def member_settings(wildcards):
    return members(wildcards.variant)[int(wildcards.member)]


def member_seed(wildcards):
    return int(wildcards.seed) + member_settings(wildcards)["seed_offset"]


def trained_variants(name):
    """The trained variants behind a predicted name: itself, or an ensemble's parts."""
    return config["ensembles"].get(name, [name])


def variant_features(variant):
    if variant in config["ensembles"]:
        return "soft-vote ensemble of " + " + ".join(config["ensembles"][variant])
    features = [describe(m["architecture"], m["params"]) for m in members(variant)]
    if len(features) > 1:
        return f"{len(features)} separately trained: " + " + ".join(features)
    return features[0]


check_variants()

VARIANTS = list(config["variants"])
PREDICTED = VARIANTS + list(
    config["ensembles"]
)  # what gets predicted, scored and tabled
SEEDS = [str(seed) for seed in config["seeds"]]
METHODS = config["postprocessing"]["methods"]
SYNTHETIC = config["raw_data"] == "synthetic"


wildcard_constraints:
    variant="|".join(PREDICTED),
    seed=r"\d+",
    member=r"\d+",
    method="|".join(METHODS),


def raw_data_file(wildcards):
    if SYNTHETIC:
        return "results/data/synthetic/mars_synthetic.npz"
    return config["raw_data"]


def trained_members(name):
    """(variant, member index) of every model behind a predicted name."""
    return [
        (variant, index)
        for variant in trained_variants(name)
        for index in range(len(members(variant)))
    ]


def member_models(wildcards):
    return [
        f"results/models/{variant}/seed{wildcards.seed}/member{index}.keras"
        for variant, index in trained_members(wildcards.variant)
    ]


def comparison_records():
    """One record per variant x seed x method: where its score, infos and benchmarks are."""
    records = []
    for variant in PREDICTED:
        for seed in SEEDS:
            for method in METHODS:
                records.append(
                    {
                        "variant": variant,
                        "features": variant_features(variant),
                        "seed": int(seed),
                        "method": method,
                        "score": f"results/scores/{variant}/seed{seed}/{method}.json",
                        "infos": [
                            f"results/training/{v}/seed{seed}/member{m}_info.json"
                            for v, m in trained_members(variant)
                        ],
                        "benchmarks": [
                            f"benchmarks/train/{v}/seed{seed}/member{m}.tsv"
                            for v, m in trained_members(variant)
                        ],
                    }
                )
    return records


def comparison_inputs(wildcards):
    records = comparison_records()
    return sorted(
        {r["score"] for r in records}
        | {path for r in records for path in r["infos"] + r["benchmarks"]}
    )


def final_outputs():
    outputs = [
        "results/comparison.csv",
        "results/comparison.md",
        "results/submission.csv",
    ]
    if SYNTHETIC:
        outputs.append("results/submission_score.json")
    return outputs
