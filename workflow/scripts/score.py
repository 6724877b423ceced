from marsseg.scripting import logged_to
from marsseg.steps import score

with logged_to(snakemake.log[0]):
    score(snakemake.input.predicted, snakemake.input.val, snakemake.output[0])
