from marsseg.scripting import logged_to
from marsseg.steps import postprocess

with logged_to(snakemake.log[0]):
    postprocess(
        snakemake.input[0], snakemake.output[0], snakemake.wildcards.method, **snakemake.params
    )
