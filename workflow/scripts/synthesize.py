from marsseg.scripting import logged_to
from marsseg.steps import synthesize

with logged_to(snakemake.log[0]):
    synthesize(snakemake.output.npz, snakemake.output.test_masks, **snakemake.params)
