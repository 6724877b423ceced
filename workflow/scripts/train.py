from marsseg.scripting import logged_to
from marsseg.training import train_member

with logged_to(snakemake.log[0]):
    settings = snakemake.params.settings
    train_member(
        train_npz=snakemake.input.train,
        val_npz=snakemake.input.val,
        model_out=snakemake.output.model,
        history_out=snakemake.output.history,
        info_out=snakemake.output.info,
        checkpoint_dir=snakemake.params.checkpoint_dir,
        architecture=settings["architecture"],
        params=settings["params"],
        loss=settings["loss"],
        training=settings["training"],
        seed=snakemake.params.seed,
        target=settings["target"],
    )
