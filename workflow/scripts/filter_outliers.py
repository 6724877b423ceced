from marsseg.scripting import logged_to
from marsseg.steps import filter_outliers

with logged_to(snakemake.log[0]):
    filter_outliers(
        snakemake.input[0], snakemake.output.filtered, snakemake.output.summary, **snakemake.params
    )
