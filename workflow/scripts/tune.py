from marsseg.scripting import logged_to
from marsseg.tuning import tune_variant

with logged_to(snakemake.log[0]):
    tune_variant(
        train_npz=snakemake.input.train,
        val_npz=snakemake.input.val,
        settings=snakemake.params.settings,
        space=snakemake.params.space,
        n_trials=snakemake.params.n_trials,
        epochs=snakemake.params.epochs,
        seed=snakemake.params.seed,
        trials_out=snakemake.output.trials,
        best_out=snakemake.output.best,
        journal_dir=snakemake.params.journal_dir,
    )
