from marsseg.figures import plot_outlier_summary
from marsseg.scripting import logged_to

with logged_to(snakemake.log[0]):
    plot_outlier_summary(
        snakemake.input.summary,
        snakemake.input.labelled,
        snakemake.output[0],
        snakemake.params.max_group_size,
    )
