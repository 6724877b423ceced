from marsseg.scripting import logged_to
from marsseg.steps import augment_training

with logged_to(snakemake.log[0]):
    augment_training(snakemake.input[0], snakemake.output[0], **snakemake.params)
