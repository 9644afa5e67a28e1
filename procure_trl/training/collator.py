"""Collate pre-tokenized rows and their perturbation masks into padded batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
from trl.trainer.utils import pad


@dataclass
class DataCollatorForConceptLM(DataCollatorForLanguageModeling):
    """TRL's language-modeling collator that also pads the per-token perturbation mask.

    TRL's collator drops keys it does not know, so the mask would never reach the loss. This one takes
    ``perturbation_mask_key`` out of every example, lets TRL build ``input_ids``, ``labels`` and
    ``attention_mask`` exactly as ``SFTTrainer`` does, then pads the masks with 0 the same way (right
    side, same ``pad_to_multiple_of``) and returns them under ``"perturbation_mask"``. Four plain ints
    come with it: ``"num_counterfactuals"`` (rows with a perturbed label token), ``"num_label_tokens"``,
    ``"num_perturbed_label_tokens"`` and ``"num_original_label_tokens"`` (predicted tokens, after the
    causal shift; the last counts rows without a perturbed label token).

    Args:
        perturbation_mask_key (`str`, defaults to `"perturbation_mask"`): the example key of the mask.
        (other arguments: see ``trl.trainer.sft_trainer.DataCollatorForLanguageModeling``)
    """

    perturbation_mask_key: str = "perturbation_mask"

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if self.padding_free:
            raise ValueError(
                "DataCollatorForConceptLM does not support padding_free: the loss needs one sample per row"
            )
        masks = []
        stripped = []
        for i, example in enumerate(examples):
            if self.perturbation_mask_key not in example:
                raise KeyError(
                    f"example {i} of the batch has no {self.perturbation_mask_key!r} key (keys: {sorted(example)}); "
                    "ConceptAwareSFTTrainer prepares it from the dataset, so check that the column survived your "
                    "preprocessing"
                )
            mask = example[self.perturbation_mask_key]
            if len(mask) != len(example["input_ids"]):
                raise ValueError(
                    f"example {i}: {self.perturbation_mask_key!r} has {len(mask)} entries but input_ids has "
                    f"{len(example['input_ids'])}; the mask must be truncated together with input_ids"
                )
            masks.append(torch.as_tensor(mask, dtype=torch.long))
            stripped.append({k: v for k, v in example.items() if k != self.perturbation_mask_key})
        batch = super().torch_call(stripped)
        batch["perturbation_mask"] = pad(
            masks, padding_value=0, padding_side="right", pad_to_multiple_of=self.pad_to_multiple_of
        )
        # Counted here, on the CPU, as plain ints (accelerate and the Trainer leave them where they are),
        # so that the trainer needs no device work or sync for them: whether the batch needs the
        # attention term, and its share of the window totals of the loss (see training/loss.py).
        labels, mask = batch["labels"], batch["perturbation_mask"].bool()
        counterfactual = ((labels != -100) & mask).any(dim=1)
        batch["num_counterfactuals"] = int(counterfactual.sum())
        targets = labels[:, 1:] != -100  # the causal-LM shift: token t+1 is predicted at t
        batch["num_label_tokens"] = int(targets.sum())
        batch["num_perturbed_label_tokens"] = int((targets & mask[:, 1:]).sum())
        batch["num_original_label_tokens"] = int(targets[~counterfactual].sum())
        return batch
