from marsseg.scripting import logged_to
from marsseg.steps import submission

with logged_to(snakemake.log[0]):
    submission(
        snakemake.input.table,
        snakemake.params.postprocessed,
        snakemake.output[0],
        snakemake.wildcards.get("variant"),
    )
