"""Tiny models and tokenizers built locally, for tests, benchmarks and offline demos.

Nothing here touches the network: tokenizers are trained in memory with ``tokenizers`` on a small
code corpus, and models are randomly initialised from a config.
"""

from __future__ import annotations

import functools

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def is_even(n):\n    if n % 2 == 0:\n        return True\n    else:\n        return False\n",
    "for i in range(10):\n    total = total + i\nprint(total)\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n",
    "while x > 0 and y < 10:\n    x -= 1\n    y += 2\n",
    "import math\nresult = [math.sqrt(v) for v in values if v >= 0]\n",
    "Write a python function to find the maximum of a list of numbers.\n",
    "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n",
]

#: A minimal chat template (a role marker before each message, EOS after it) for the tiny tokenizers: what the chat
#: prompt format needs from a tokenizer, in tests and offline demos.
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


@functools.lru_cache(maxsize=4)
def _trained_tokenizer_json(kind: str, vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = list(SPECIAL_TOKENS.values())
    if kind == "bpe":  # byte-level BPE, the GPT-2 / Llama-3 family
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer: trainers.Trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    elif kind == "wordpiece":  # BERT family; whitespace is dropped, so offsets have gaps
        tok = Tokenizer(models.WordPiece(unk_token="<unk>"))
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}; use 'bpe' or 'wordpiece'")
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tok.to_str()


def build_tiny_tokenizer(kind: str = "bpe", vocab_size: int = 512, add_bos: bool = False):
    """A fast tokenizer (``PreTrainedTokenizerFast``) trained in memory on a few code snippets.

    ``add_bos=True`` adds a BOS token in front of every encoded text (a Llama-style post-processor),
    useful to test alignment with special tokens.
    """
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_str(_trained_tokenizer_json(kind, vocab_size))
    if add_bos:
        bos = SPECIAL_TOKENS["bos_token"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
    fast.padding_side = "right"
    return fast


def build_tiny_llama(
    tokenizer=None,
    num_hidden_layers: int = 2,
    hidden_size: int = 64,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 1024,
    seed: int = 0,
    attn_implementation: str = "sdpa",
):
    """A randomly initialised Llama-architecture causal LM, small enough for CPU tests."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.config._attn_implementation = attn_implementation
    return model


def save_tiny_model(output_dir: str, seed: int = 0) -> str:
    """Save a tiny random Llama and its tokenizer to ``output_dir``: a local model for CPU trials of the whole chain.

    It writes nothing useful (random weights); it makes ``procure train`` and ``procure evaluate`` run in seconds.
    Longer positions than the tests' default: benchmark prompts are long in a 512-token vocabulary.
    """
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_llama(tokenizer, max_position_embeddings=4096, seed=seed)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def main(argv: list[str] | None = None) -> int:
    """``python -m procure_trl.testing_utils OUTPUT_DIR``: save the tiny model (see :func:`save_tiny_model`)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m procure_trl.testing_utils",
                                     description="Save a tiny random Llama + tokenizer for CPU trials.")
    parser.add_argument("output_dir", help="folder to write the model and tokenizer into")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default %(default)s)")
    args = parser.parse_args(argv)
    print(f"tiny model saved to {save_tiny_model(args.output_dir, args.seed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
