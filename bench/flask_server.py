"""What many teams run instead of Kennel: scikit-learn models behind Flask,
served by gunicorn. Used by bench/predict:

  BENCH_MODELS=models.pickle gunicorn -w 2 --threads 4 -b 127.0.0.1:PORT \
      --chdir bench flask_server:app

models.pickle comes from `sklearn_bench.py fit-save`: the binary linear
(LogisticRegression) and forest (RandomForestClassifier) pipelines, trained on
the same data as Kennel's models, with StandardScaler + OneHotEncoder in front.

POST /v1/models/{name}/predict takes Kennel's body — one instance
{"entity": ..., "features": {...}} or a batch {"instances": [...]} — runs the
whole batch through the pipeline's predict_proba in one call, and answers per
instance the model, the predicted class and its probabilities, like Kennel
(without prediction ids, fallbacks or a prediction log). A model named
bench_linear* is the linear pipeline, bench_forest* the forest.
"""
import os
import pickle

import numpy as np
from flask import Flask, jsonify, request

with open(os.environ["BENCH_MODELS"], "rb") as f:
    _saved = pickle.load(f)
FIELDS = _saved["fields"]
NUMERIC = set(_saved["numeric"])
MODELS = _saved["models"]

app = Flask(__name__)


def _row(features):
    return [float(features.get(k, np.nan)) if k in NUMERIC else str(features.get(k, "")) for k in FIELDS]


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")


@app.post("/v1/models/<name>/predict")
def predict(name):
    algo = "linear" if name.startswith("bench_linear") else "forest" if name.startswith("bench_forest") else None
    if algo is None:
        return jsonify(error={"code": "not_found", "message": f"no model named {name}"}), 404
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        return jsonify(error={"code": "invalid_argument", "message": "the body must be a JSON object"}), 400
    batch = "instances" in body
    instances = body["instances"] if batch else [body]
    try:
        x = np.array([_row(inst["features"]) for inst in instances], dtype=object)
    except (KeyError, TypeError, ValueError) as e:
        return jsonify(error={"code": "invalid_argument", "message": str(e)}), 400
    pipe = MODELS[algo]
    proba = pipe.predict_proba(x)
    classes = [str(c) for c in pipe.classes_]
    out = []
    for p in proba:
        k = int(np.argmax(p))
        out.append({"model": name, "prediction": classes[k],
                    "probabilities": {c: float(v) for c, v in zip(classes, p)}})
    return jsonify(predictions=out) if batch else jsonify(out[0])
