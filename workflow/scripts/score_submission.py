from marsseg.scripting import logged_to
from marsseg.steps import score_submission

with logged_to(snakemake.log[0]):
    score_submission(snakemake.input.submission, snakemake.input.test_masks, snakemake.output[0])
