from marsseg.figures import plot_confusion_matrices
from marsseg.scripting import logged_to

with logged_to(snakemake.log[0]):
    plot_confusion_matrices(
        snakemake.params.scores,
        snakemake.output[0],
        title=f"{snakemake.wildcards.variant}: validation confusion matrices",
    )
