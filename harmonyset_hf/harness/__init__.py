"""HarmonySet inside lm-eval and lmms-eval: task logic, model adapters and the `harmonyset-lm-eval` launcher.

The task folders (``tasks/lm_eval/harmonyset``, ``tasks/lmms_eval/harmonyset``) hold YAML and a thin
``utils.py`` that imports from :mod:`harmonyset_hf.harness.tasks`; the numbers come from the same
:mod:`harmonyset_hf.evaluation.scoring` and :mod:`harmonyset_hf.evaluation` code as ``harmonyset eval``.
"""
