from marsseg.scripting import logged_to
from marsseg.tables import write_comparison

with logged_to(snakemake.log[0]):
    write_comparison(
        snakemake.params.records,
        snakemake.output.csv,
        snakemake.output.md,
        snakemake.output.html,
    )
