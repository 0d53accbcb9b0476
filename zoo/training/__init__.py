"""Training: one engine (zoo.training.engine) for every run, and the tasks it runs: a classifier
(zoo.training.classify, `zoo train`), a language model (zoo.training.language, `zoo pretrain`), and fine-tuning one
from the other (zoo.training.finetune). See docs/training.md."""
