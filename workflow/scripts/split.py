from marsseg.scripting import logged_to
from marsseg.steps import split

with logged_to(snakemake.log[0]):
    split(snakemake.input[0], snakemake.output.train, snakemake.output.val, **snakemake.params)
