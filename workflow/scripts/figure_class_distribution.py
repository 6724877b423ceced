from marsseg.figures import plot_class_distribution
from marsseg.scripting import logged_to

with logged_to(snakemake.log[0]):
    plot_class_distribution(snakemake.input.labelled, snakemake.input.filtered, snakemake.output[0])
