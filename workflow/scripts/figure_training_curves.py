from marsseg.figures import plot_training_curves
from marsseg.scripting import logged_to

with logged_to(snakemake.log[0]):
    plot_training_curves(
        snakemake.params.histories,
        snakemake.output[0],
        title=f"{snakemake.wildcards.variant}: training curves",
        target=snakemake.params.target,
    )
