# Helpers, config validation and path patterns shared by every rule.

import json
import os
import re
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import DeploymentMethod

sys.path.insert(0, workflow.basedir)

from quantstudy import paths
from quantstudy.config import BASELINE, ConfigError, effective_recipe, validate_config


USE_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
VENVS = Path(os.environ.get("QUANTSTUDY_VENVS", Path(workflow.basedir) / ".venv"))


def env_python(env):
    """Interpreter of a rule's env: the activated conda env under --sdm conda, else the
    local venv built from the same envs/<env>.yaml by scripts/setup_envs.py."""
    if USE_CONDA:
        return "python"
    py = VENVS / env / "bin" / "python"
    if not py.exists():
        raise WorkflowError(
            f"local env '{env}' is missing ({py}); build it with `python3 scripts/setup_envs.py {env}` "
            "or run with `--sdm conda`"
        )
    return str(py)


# Exported, not params: moving the checkout or switching to conda must not look like a
# parameter change. Every job (local or a cluster jobstep) re-parses this file.
for _env in ("quantize", "serve", "analysis"):
    os.environ[f"QS_PYTHON_{_env.upper()}"] = env_python(_env)


def lm_eval_tasks_dir():
    """lm-eval's bundled task YAMLs in the local serve env (None under conda)."""
    if USE_CONDA:
        return None
    found = sorted(VENVS.glob("serve/lib/python*/site-packages/lm_eval/tasks"))
    return found[0] if found else None


# Fail on bad input before any job runs; every message names the key at fault.
with open(Path(workflow.basedir) / "config/schema/config.schema.yaml") as _f:
    _SCHEMA = yaml.safe_load(_f)
try:
    validate_config(config, _SCHEMA, workdir=".", lm_eval_tasks_dir=lm_eval_tasks_dir())
except ConfigError as e:
    raise WorkflowError(str(e))


QUANTIZED_MODEL = paths.QUANTIZED_MODEL
EVAL_JSON = paths.EVAL_JSON
EVAL_SAMPLES = paths.EVAL_SAMPLES
SUMMARY_CSV = paths.SUMMARY_CSV
SUMMARY_MD = paths.SUMMARY_MD

MODELS = list(config["models"])
SCHEMES = list(config["schemes"])
QUANTIZED = [s for s in SCHEMES if s != BASELINE]
TASKS = list(config["tasks"])


wildcard_constraints:
    model="|".join(map(re.escape, MODELS)),
    scheme="|".join(map(re.escape, SCHEMES)),
    task="|".join(map(re.escape, TASKS)),


def model_dir(model, scheme):
    """The checkpoint evaluated for (model, scheme): bf16 is the base model itself."""
    if scheme == BASELINE:
        return config["models"][model]["path"]
    return QUANTIZED_MODEL.format(model=model, scheme=scheme)


def recipe(model, scheme):
    return effective_recipe(config, model, scheme)


def calibration_file(model, scheme):
    cal = recipe(model, scheme).get("calibration")
    return config["calibration_sets"][cal["set"]]["path"] if cal else None


def res(rule, key, default):
    return config.get("resources", {}).get(rule, {}).get(key, default)
