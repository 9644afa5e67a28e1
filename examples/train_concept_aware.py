"""Concept-aware QLoRA fine-tuning from Python: the same as `procure train --config procure_qlora.yaml`.

    python examples/train_concept_aware.py --model Qwen/Qwen2.5-Coder-1.5B-Instruct \
        --dataset outputs/procure-counterfactuals --output-dir outputs/procure-qlora

The dataset is the output of `procure build` (or its Hub copy): rows with
`prompt`, `completion` and `changed_spans`. Multi-GPU: `accelerate launch examples/train_concept_aware.py ...`.
"""

import argparse

from datasets import load_dataset
from transformers import AutoTokenizer

from procure_trl.training import ConceptAwareSFTConfig, ConceptAwareSFTTrainer
from procure_trl.training.qlora import default_lora_config, load_model_4bit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True, help="Hub id or local folder of the counterfactual dataset")
    parser.add_argument("--config", default="all", help="dataset config: a concept name or 'all'")
    parser.add_argument("--output-dir", default="outputs/procure-qlora")
    parser.add_argument("--lambda", dest="lam", type=float, default=0.1, help="weight of the attention term")
    parser.add_argument("--max-steps", type=int, default=-1)
    args = parser.parse_args()

    dataset = load_dataset(args.dataset, name=args.config)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = load_model_4bit(args.model)  # NF4 + double quantization, bf16 compute, sdpa, k-bit prepared
    config = ConceptAwareSFTConfig(
        output_dir=args.output_dir,
        concept_loss_weight=args.lam,
        perturbed_token_weight=1.0,
        max_length=1024,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=4,
        learning_rate=2e-4,
        num_train_epochs=2,
        max_steps=args.max_steps,
        logging_steps=10,
        report_to="none",
    )
    trainer = ConceptAwareSFTTrainer(
        model,
        args=config,
        train_dataset=dataset["train"],
        processing_class=tokenizer,
        peft_config=default_lora_config(),
    )
    trainer.train()
    trainer.save_model(args.output_dir)  # the LoRA adapter


if __name__ == "__main__":
    main()
