import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The Snakefile reads architecture names from the project's package (keras-free part). The rules'
# scripts import it too: installed in .venv (make setup), and in a conda env (--sdm conda) through
# workflow/scripts/marsseg, a link to src/marsseg, as Snakemake puts a script's folder on sys.path.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from marsseg.augment import check_leaky_split, check_steps  # noqa: E402
from marsseg.config_errors import check_finite, schema_error_message  # noqa: E402
from marsseg.models import (  # noqa: E402
    ARCHITECTURE_NAMES,
    check_depth,
    describe,
    resolve_params,
)
from marsseg.tuning import check_search_space  # noqa: E402
from marsseg.variants import (  # noqa: E402
    big_rock_helper_of,
    check_big_rock_helper_use,
    helper_variants,
    resolve_members,
)

check_finite(config)
try:
    validate(config, workflow.source_path("../schemas/config.schema.yaml"))
except WorkflowError as error:  # raised while handling jsonschema's ValidationError
    raise ValueError(schema_error_message(error.__context__)) from None


def check_raw_data():
    path = config["raw_data"]
    if path != "synthetic" and not os.path.isfile(path):
        raise ValueError(
            f"config: raw_data '{path}' does not exist. Fix: set raw_data to the path of "
            "mars_for_students.npz (or another course-format npz), or to `synthetic`."
        )
    synthetic = config["synthetic"]
    if path == "synthetic" and synthetic["n_aliens"] >= synthetic["n_train"]:
        raise ValueError(
            f"config: synthetic.n_aliens ({synthetic['n_aliens']}) leaves no real images among "
            f"synthetic.n_train ({synthetic['n_train']}). Fix: make n_aliens smaller than "
            "n_train (the course file: 110 of 2615)."
        )


def check_variants():
    for name in config["variants"]:
        for member in members(name):
            if member["architecture"] not in ARCHITECTURE_NAMES:
                raise ValueError(
                    f"config: variant '{name}' names architecture '{member['architecture']}', "
                    f"which does not exist. Fix: use one of {', '.join(ARCHITECTURE_NAMES)}."
                )
            try:
                check_depth(resolve_params(member["architecture"], member["params"]))
            except ValueError as error:
                raise ValueError(
                    f"config: variant '{name}': {error}. Fix: correct variants.{name}.params."
                ) from None
    known = list(config["variants"]) + list(config["ensembles"])
    unknown = [name for name in config["run_variants"] or [] if name not in known]
    if unknown:
        raise ValueError(
            f"config: run_variants lists unknown variant(s) {unknown}. "
            f"Fix: use names defined under `variants:` or `ensembles:` ({', '.join(known)})."
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
    check_big_rock_helper_use(config)


def members(variant):
    """The separately trained members of a variant, each with its settings fully resolved."""
    return resolve_members(config, variant)


def member_settings(wildcards):
    return members(wildcards.variant)[int(wildcards.member)]


def member_seed(wildcards):
    return int(wildcards.seed) + member_settings(wildcards)["seed_offset"]


def trained_variants(name):
    """The trained variants behind a predicted name: itself, or an ensemble's parts."""
    return config["ensembles"].get(name, [name])


def big_rock_helper(name):
    """The Big Rock helper of a predicted name, {variant, threshold}, or {} (an ensemble
    applies its parts' helper)."""
    return big_rock_helper_of(config, name)


def helper_models(wildcards):
    helper = big_rock_helper(wildcards.variant)
    if not helper:
        return []
    return [
        f"results/models/{helper['variant']}/seed{wildcards.seed}/member{index}.keras"
        for index in range(len(members(helper["variant"])))
    ]


def helper_threshold(wildcards):
    return big_rock_helper(wildcards.variant).get("threshold", 0.5)


def variant_features(variant):
    if variant in config["ensembles"]:
        text = "soft-vote ensemble of " + " + ".join(config["ensembles"][variant])
    else:
        features = [describe(m["architecture"], m["params"]) for m in members(variant)]
        text = features[0]
        if len(features) > 1:
            text = f"{len(features)} separately trained: " + " + ".join(features)
    helper = big_rock_helper(variant)
    if helper:
        text += f"; Big Rock from {helper['variant']} where p >= {helper['threshold']}"
    return text


VARIANTS = list(config["variants"])  # everything that can be trained
HELPERS = helper_variants(config)  # trained for the variants that name them, not scored
SCORED_VARIANTS = [name for name in VARIANTS if name not in HELPERS]

check_raw_data()
check_variants()
check_steps(config["augmentation"]["steps"])
check_leaky_split(config["split"]["leaky"], config["augmentation"]["steps"])

# What this run predicts, scores and tables (Big Rock helpers are trained on demand only).
PREDICTED = [
    name
    for name in SCORED_VARIANTS + list(config["ensembles"])
    if config["run_variants"] is None or name in config["run_variants"]
]
SEEDS = [str(seed) for seed in config["seeds"]]
METHODS = config["postprocessing"]["methods"]
# Test-time augmentation: with `prediction: {tta: true}` every prediction is scored without and
# with it, as two rows of the table.
TTA = ["off", "on"] if config["prediction"]["tta"] else ["off"]
SYNTHETIC = config["raw_data"] == "synthetic"


wildcard_constraints:
    variant="|".join(VARIANTS + list(config["ensembles"])),
    seed=r"\d+",
    member=r"\d+",
    method="|".join(METHODS),
    tta="on|off",


# Augmentation applies to the training split only; the `leaky` ablation (seed 001's mistake)
# augments first and splits after, so that copies of one image land on both sides.
LEAKY = config["split"]["leaky"]
AUGMENTED = "results/data/augmented.npz"


def split_input():
    return AUGMENTED if LEAKY else "results/data/filtered.npz"


def augment_input():
    return "results/data/filtered.npz" if LEAKY else "results/data/train.npz"


def training_input():
    return "results/data/train.npz" if LEAKY else AUGMENTED


def raw_data_file(wildcards):
    if SYNTHETIC:
        return "results/data/synthetic/mars_synthetic.npz"
    return config["raw_data"]


def trained_members(name):
    """(variant, member index) of every model behind a predicted name, its helper's included."""
    variants = trained_variants(name)
    if big_rock_helper(name):
        variants = variants + [big_rock_helper(name)["variant"]]
    return [
        (variant, index)
        for variant in variants
        for index in range(len(members(variant)))
    ]


# Every variant trained for what this run predicts: the variants themselves, ensemble parts and
# Big Rock helpers.
TRAINED = [
    name
    for name in VARIANTS
    if any(name == variant for p in PREDICTED for variant, _ in trained_members(p))
]


def member_models(wildcards):
    return [
        f"results/models/{variant}/seed{wildcards.seed}/member{index}.keras"
        for variant in trained_variants(wildcards.variant)
        for index in range(len(members(variant)))
    ]


def member_part_sizes(wildcards):
    """The number of models of each trained variant in member_models, in its order: a soft vote
    weighs each variant equally, whatever its number of members."""
    return [len(members(variant)) for variant in trained_variants(wildcards.variant)]


def comparison_records():
    """One record per variant x seed x tta x method: where its score, infos and benchmarks are."""
    records = []
    for variant in PREDICTED:
        for seed in SEEDS:
            for tta in TTA:
                for method in METHODS:
                    records.append(
                        {
                            "variant": variant,
                            "features": variant_features(variant),
                            "seed": int(seed),
                            "tta": tta,
                            "method": method,
                            "score": f"results/scores/{variant}/seed{seed}/tta_{tta}/{method}.json",
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


# The report's figures (workflow/rules/report.smk): each takes the rule's wildcards and returns
# label -> file(s); the `_files` twins list those files as the rule's input.
def method_label(tta, method):
    return f"{method} + TTA" if tta == "on" else method


def figure_postprocessed(wildcards):
    """method (+ TTA) -> the variant's post-processed label maps of the first seed."""
    return {
        method_label(tta, method): (
            f"results/postprocessed/{wildcards.variant}/seed{SEEDS[0]}/tta_{tta}/{method}.npz"
        )
        for tta in TTA
        for method in METHODS
    }


def figure_scores(wildcards):
    """method (+ TTA) -> the variant's score JSONs, one per seed."""
    return {
        method_label(tta, method): [
            f"results/scores/{wildcards.variant}/seed{seed}/tta_{tta}/{method}.json"
            for seed in SEEDS
        ]
        for tta in TTA
        for method in METHODS
    }


def figure_histories(wildcards):
    """line label -> per-epoch history CSV, for every seed and member of a variant."""
    count = len(members(wildcards.variant))
    histories = {}
    for seed in SEEDS:
        for m in range(count):
            label = f"seed {seed}, member {m}" if count > 1 else f"seed {seed}"
            histories[label] = (
                f"results/training/{wildcards.variant}/seed{seed}/member{m}_history.csv"
            )
    return histories


def variant_target(wildcards):
    """What a variant's models predict: `classes`, or `big_rock` for a Big Rock helper (its
    history's val_miou is then the IoU of Big Rock)."""
    return members(wildcards.variant)[0]["target"]


def figure_postprocessed_files(wildcards):
    return list(figure_postprocessed(wildcards).values())


def figure_scores_files(wildcards):
    return [path for paths in figure_scores(wildcards).values() for path in paths]


def figure_histories_files(wildcards):
    return list(figure_histories(wildcards).values())


def submission_sources(variants):
    """(variant, tta, method) -> the first seed's post-processed label maps: the rows of the
    comparison table a submission can come from."""
    return {
        (variant, tta, method): (
            f"results/postprocessed/{variant}/seed{SEEDS[0]}/tta_{tta}/{method}.npz"
        )
        for variant in variants
        for tta in TTA
        for method in METHODS
    }


def variant_submission_sources(wildcards):
    return submission_sources([wildcards.variant])


def variant_postprocessed_files(wildcards):
    return list(variant_submission_sources(wildcards).values())


def tta_on(wildcards):
    return wildcards.tta == "on"


def final_outputs():
    outputs = [
        "results/comparison.csv",
        "results/comparison.md",
        "results/comparison.html",
        "results/submission.csv",
        *expand("results/submissions/{variant}.csv", variant=PREDICTED),
        "results/figures/class_distribution.png",
        "results/figures/outliers.png",
        *expand("results/figures/predictions/{variant}.png", variant=PREDICTED),
        *expand("results/figures/confusion/{variant}.png", variant=PREDICTED),
        *expand("results/figures/training_curves/{variant}.png", variant=TRAINED),
    ]
    if SYNTHETIC:
        outputs.append("results/submission_score.json")
    return outputs


def tuned_variants_outputs(wildcards):
    """What the `tuning` target asks for; checked only when it is asked for."""
    tuned = config["tuning"]["variants"]
    unknown = [name for name in tuned if name not in SCORED_VARIANTS]
    if unknown:
        raise ValueError(
            f"config: tuning.variants lists {unknown}, which are not trained variants. "
            f"Fix: use names defined under `variants:` ({', '.join(SCORED_VARIANTS)})."
        )
    check_search_space(config["tuning"]["search_space"])
    return expand("results/tuning/{variant}/best.yaml", variant=tuned)


def first_member_settings(wildcards):
    return members(wildcards.variant)[0]
