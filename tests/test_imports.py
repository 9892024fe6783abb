"""What importing zoo pulls in: models stay light, the task objects load on first use."""

import json
import subprocess
import sys

from tests.tasks.conftest import ROOT

_CODE = """
import json, sys
import zoo.models
heavy = sorted(m for m in sys.modules if m.split(".")[0] == "recipes" or m.startswith(("zoo.convert", "zoo.export", "zoo.tasks")))
import zoo
print(json.dumps([heavy, zoo.Translator.__module__, zoo.ImageClassifier.__module__, "Translator" in dir(zoo)]))
"""


def test_import_zoo_models_imports_no_converter_export_task_or_recipe():
    result = subprocess.run([sys.executable, "-c", _CODE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    heavy, translator, classifier, listed = json.loads(result.stdout.strip().splitlines()[-1])
    assert heavy == []
    assert (translator, classifier, listed) == ("zoo.tasks.translator", "zoo.tasks.image_classifier", True)
