"""What the warm cell server (harness.run.launch) imports once, so that no cell pays for it.

Only imports: nothing here may start threads, touch a device or seed anything, because every cell is
forked from the process that ran this.
"""

import harness.strategies.quantize  # noqa: F401, I001  (first: quiets bitsandbytes' optional-kernel warning)
import peft  # noqa: F401
import torch  # noqa: F401
import torch._inductor.config  # noqa: F401  (torch.use_deterministic_algorithms imports it)
import transformers  # noqa: F401
from transformers import (  # noqa: F401  (resolving the lazy names imports the model code)
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.models.bert import modeling_bert  # noqa: F401  (the shipped encoder)
from transformers.models.llama import modeling_llama  # noqa: F401  (the shipped causal LM)

import harness.run.worker  # noqa: F401
from harness.run.cell import run_cell  # noqa: F401  (and with it every scenario, strategy and tracker)
