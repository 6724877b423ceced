from marsseg.scripting import logged_to
from marsseg.steps import load_raw

with logged_to(snakemake.log[0]):
    load_raw(snakemake.input[0], snakemake.output.labelled, snakemake.output.test)
