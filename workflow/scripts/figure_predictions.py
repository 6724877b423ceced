from marsseg.figures import plot_predictions
from marsseg.scripting import logged_to

with logged_to(snakemake.log[0]):
    plot_predictions(
        snakemake.input.val,
        snakemake.params.postprocessed,
        snakemake.output[0],
        title=f"{snakemake.wildcards.variant}, seed {snakemake.params.seed}: validation images",
    )
