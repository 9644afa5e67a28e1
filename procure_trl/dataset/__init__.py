"""The dataset stage: counterfactual rows as a Hugging Face dataset.

Rows, schema, split and loading (:mod:`.rows`), the prompt format training and evaluation share
(:mod:`.prompt_format`), per-token masks (:mod:`.masks`), near-duplicate grouping for the split
(:mod:`.near_duplicates`), the builder behind ``procure build`` (:mod:`.builder`) and the dataset card (:mod:`.card`).
"""
