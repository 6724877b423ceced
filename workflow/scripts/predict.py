from marsseg.prediction import predict_files
from marsseg.scripting import logged_to

with logged_to(snakemake.log[0]):
    predict_files(
        snakemake.input.models,
        snakemake.input.big_rock_helper,
        snakemake.input.val,
        snakemake.input.test,
        snakemake.output[0],
        **snakemake.params,
    )
