"""The model registry: trained versions as files under ``<root>/<version>/`` plus rows of ``model_versions``.

Each version directory holds ``weights.pt`` (``torch.save(model.state_dict())``) and ``manifest.json``
(the :class:`~schemas.model.ModelManifest` as saved, with the weights' sha256). The database row carries
the same manifest and the version's status; the status in the database is the truth, the file is the
immutable record of what was saved. A version is loaded only when its feature-spec hash equals the
caller's, the weights hash to the recorded sha256 and unpickle as plain tensors (``weights_only=True``),
and the rebuilt module accepts them with ``strict=True``.

Any model type is stored this way: the CNN-LSTM (``hybrid_cnn_lstm``) and the baselines, exported as
PyTorch modules whose buffers hold the fitted numbers (``majority``, ``logistic``, ``gradient_boosting``:
``ml.models.served``), so the predictor serves each of them through the same path. A version may carry
its run's gate evidence (``evaluation.npz``, its sha256 in ``params["evidence_sha256"]``, ``ml.gate``).

Promotion: :meth:`promote_gated` asks a decision function (the gate of ``ml.gate``, via
``ml.workflow.promote_if_better``) and stores the decision (``model_gate_decisions``), its audit row
(``model_promote``, the numbers in ``new_value``) and, when promoted, the production switch in one
transaction; :meth:`promote` is the plain comparison of one manifest metric, kept for callers without
evidence. Both flip the production row through :meth:`ModelVersionRepository.promote`, which sends
``NOTIFY model_promoted`` on commit (the daemon hot-swaps on it).

Errors (all :class:`RegistryError`, each names the version and what was wrong)::

    RegistryError
    ├── ModelNotFound          no such version (in the database)
    ├── UnknownModelType       no factory rebuilds this model_type
    ├── FeatureSpecMismatch    the model was trained on another feature spec
    ├── ArtifactMissing        weights.pt or manifest.json is gone
    ├── ArtifactCorrupt        sha256 differs, the file is not plain tensors, or the module rejects it
    └── InvalidModelInput      a bad argument to save/promote/reject
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
import torch
from psycopg import Connection
from torch import nn

from infra.db.connection import Database
from infra.db.errors import DuplicateKey, NotFound, PromotionConflict
from infra.db.repositories.audit import append_sync
from infra.db.repositories.model_gate import ModelGateRepository
from infra.db.repositories.model_versions import ModelVersionRepository
from schemas.enums import AuditAction, ModelStatus
from schemas.features import FeatureSpec
from schemas.model import DataWindow, ModelManifest
from schemas.trading import AuditEvent

WEIGHTS_FILE = "weights.pt"
MANIFEST_FILE = "manifest.json"
REJECTION_FILE = "rejection.json"
EVIDENCE_FILE = "evaluation.npz"
HYBRID_CNN_LSTM = "hybrid_cnn_lstm"
SERVED_BASELINE_TYPES = ("majority", "logistic", "gradient_boosting")

ModelFactory = Callable[[dict[str, Any]], nn.Module]
ConnectionFactory = Callable[[], Connection[Any]]


class RegistryError(Exception):
    """Base class of the registry's errors."""


class ModelNotFound(RegistryError):
    """The version is not registered."""


class UnknownModelType(RegistryError):
    """No factory is registered for the manifest's model_type."""


class FeatureSpecMismatch(RegistryError):
    """The model was trained on features of another spec than the caller computes."""


class ArtifactMissing(RegistryError):
    """A file of the version directory is missing."""


class ArtifactCorrupt(RegistryError):
    """The weights file was changed, is not a plain state dict, or does not fit the rebuilt module."""


class InvalidModelInput(RegistryError, ValueError):
    """A bad argument: names the argument and what was wrong with it."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified model in eval mode on the CPU, with the manifest it was loaded from."""

    manifest: ModelManifest
    model: nn.Module


@dataclass(frozen=True)
class PromotionDecision:
    """What `promote` decided and why; `promoted` is False for every refusal."""

    promoted: bool
    version: str
    metric: str
    higher_is_better: bool
    candidate_value: float | None
    production_version: str | None
    production_value: float | None
    reason: str
    gate: dict[str, Any] | None = None  # the gate's numbers (ml.gate.GateDecision.to_dict) when it decided


def _create_hybrid_cnn_lstm(params: dict[str, Any]) -> nn.Module:
    if "model_config" not in params:
        raise InvalidModelInput("params of a hybrid_cnn_lstm model must contain 'model_config'")
    # Imported here so the registry (and the daemon's fallback path) works without the model module.
    from ml.models.hybrid_cnn_lstm import ModelConfig, create_model

    return create_model(ModelConfig.from_dict(params["model_config"]))


def _create_served_baseline(params: dict[str, Any]) -> nn.Module:
    from ml.models.served import create_served_baseline

    try:
        return create_served_baseline(params)
    except (KeyError, ValueError) as exc:
        raise InvalidModelInput(f"params of a served baseline are not usable: {exc}") from None


DEFAULT_FACTORIES: dict[str, ModelFactory] = {
    HYBRID_CNN_LSTM: _create_hybrid_cnn_lstm,
    **{kind: _create_served_baseline for kind in SERVED_BASELINE_TYPES},
}


def code_version() -> str:
    """``git:<commit>`` of the checkout this module runs from, else ``depthcharge <package version>``.

    Reads ``.git`` directly (HEAD, loose refs, packed-refs) rather than running git, so it costs no
    subprocess and works where git is not installed.
    """
    git_dir = Path(__file__).resolve().parent.parent / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return f"git:{head}"
        ref = head.removeprefix("ref: ")
        loose = git_dir / ref
        if loose.is_file():
            return f"git:{loose.read_text().strip()}"
        for line in (git_dir / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return f"git:{sha}"
    except OSError:
        pass
    try:
        return f"depthcharge {metadata.version('depthcharge')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _json_able(name: str, value: object) -> None:
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidModelInput(
            f"{name} must be JSON-serialisable (plain dicts, lists, numbers): {exc}"
        ) from None


def _state_dict_bytes(model: nn.Module) -> bytes:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _load_state(blob: bytes, version: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for a bad file
        raise ArtifactCorrupt(
            f"model {version}: {WEIGHTS_FILE} is not a plain tensor state dict "
            f"(refused by torch.load(weights_only=True)): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArtifactCorrupt(f"model {version}: {WEIGHTS_FILE} does not hold a state dict of tensors")
    return state


def _fit_state(model: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactCorrupt(
            f"{what}: the weights do not fit the module rebuilt from params: {exc}"
        ) from None


class ModelRegistry:
    """Model versions on disk under ``root`` (the caller's models directory: ``Settings.models_dir``,
    ``$VAR_DIR/models``, for the CLI and Dagster) and in ``model_versions``.

    ``db`` is a :class:`Database` (the registry opens an autocommit connection per call) or a callable
    returning a new psycopg connection, which the registry closes after use. ``factories`` maps a
    model_type to a callable rebuilding an untrained module from the manifest's params; they are added to
    the default one for ``hybrid_cnn_lstm``.
    """

    def __init__(
        self,
        db: Database | ConnectionFactory,
        root: Path | str,
        factories: Mapping[str, ModelFactory] | None = None,
    ) -> None:
        self.root = Path(root)
        self.factories: dict[str, ModelFactory] = {**DEFAULT_FACTORIES, **(factories or {})}
        self._connect: ConnectionFactory = (
            (lambda: db.connect(autocommit=True)) if isinstance(db, Database) else db
        )

    @contextlib.contextmanager
    def _repo(self) -> Iterator[ModelVersionRepository]:
        with self._connect() as conn:
            yield ModelVersionRepository(conn)

    # ---- save -------------------------------------------------------------------------------------

    def save(
        self,
        model: nn.Module,
        *,
        model_type: str,
        params: Mapping[str, Any],
        preprocessor_dict: Mapping[str, Any] | None,
        metrics: Mapping[str, float],
        data_window: DataWindow,
        horizons_s: tuple[int, ...] | list[int],
        feature_spec: FeatureSpec,
        parent_version: str | None = None,
        evidence: bytes | None = None,
    ) -> ModelManifest:
        """Write the version's files atomically, then its row; returns the manifest (status candidate).

        The weights are checked against a module rebuilt from ``params`` before anything is written, so
        every saved version can be loaded. If the database refuses the row, the files are removed.
        ``evidence`` (the run's gate evidence, ``ml.gate.GateEvidence.to_bytes``) is written beside the
        weights and its sha256 recorded in ``params["evidence_sha256"]``.
        """
        if not isinstance(model, nn.Module):
            raise InvalidModelInput(f"model must be a torch.nn.Module, got {type(model).__name__}")
        factory = self._factory(model_type, "save")
        params_d = dict(params)
        if evidence is not None:
            params_d["evidence_sha256"] = hashlib.sha256(evidence).hexdigest()
        scaler = None if preprocessor_dict is None else dict(preprocessor_dict)
        _json_able("params", params_d)
        _json_able("preprocessor_dict", scaler)
        metrics_d = self._check_metrics(metrics)
        horizons = [int(h) for h in horizons_s]
        if not horizons or any(h <= 0 for h in horizons):
            raise InvalidModelInput(f"horizons_s must be positive seconds, got {list(horizons_s)}")
        if not isinstance(feature_spec, FeatureSpec):
            raise InvalidModelInput(f"feature_spec must be a FeatureSpec, got {type(feature_spec).__name__}")
        if not isinstance(data_window, DataWindow):
            raise InvalidModelInput(f"data_window must be a DataWindow, got {type(data_window).__name__}")

        blob = _state_dict_bytes(model)
        _fit_state(factory(params_d), _load_state(blob, "being saved"), f"model_type {model_type!r}")
        sha = hashlib.sha256(blob).hexdigest()
        created_ms = time.time_ns() // 1_000_000
        stamp = datetime.fromtimestamp(created_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
        version = f"{stamp}-{sha[:8]}"
        manifest = ModelManifest(
            version=version,
            model_type=model_type,
            created_ms=created_ms,
            feature_spec_hash=feature_spec.spec_hash,
            definitions_version=feature_spec.definitions_version,
            feature_names=list(feature_spec.names),
            horizons_s=horizons,
            artifact_path=f"{version}/{WEIGHTS_FILE}",  # relative to the registry root
            artifact_sha256=sha,
            data_window=data_window,
            code_version=code_version(),
            metrics=metrics_d,
            scaler=scaler,
            params=params_d,
            parent_version=parent_version,
        )
        final = self._write_files(version, blob, manifest.to_json(), evidence)
        try:
            with self._repo() as repo:
                repo.add(manifest)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        return manifest

    def _write_files(
        self, version: str, blob: bytes, manifest_json: bytes, evidence: bytes | None = None
    ) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / version
        if final.exists():
            raise DuplicateKey(f"model version {version!r} already has a directory at {final}")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=self.root))
        try:
            _write_synced(tmp / WEIGHTS_FILE, blob)
            _write_synced(tmp / MANIFEST_FILE, manifest_json)
            if evidence is not None:
                _write_synced(tmp / EVIDENCE_FILE, evidence)
            _fsync_dir(tmp)
            tmp.rename(final)  # atomic on one filesystem: the directory appears complete or not at all
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    @staticmethod
    def _check_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, value in metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InvalidModelInput(f"metric {name!r} must be a number, got {value!r}") from None
            if not math.isfinite(number):
                raise InvalidModelInput(f"metric {name!r} must be finite, got {number}")
            out[str(name)] = number
        return out

    def _factory(self, model_type: str, action: str) -> ModelFactory:
        try:
            return self.factories[model_type]
        except KeyError:
            raise UnknownModelType(
                f"cannot {action} model_type {model_type!r}: no factory registered "
                f"(known: {sorted(self.factories)})"
            ) from None

    # ---- read -------------------------------------------------------------------------------------

    def list(self, status: ModelStatus | None = None, *, limit: int = 100) -> builtins.list[ModelManifest]:
        """Registered versions, newest first, optionally of one status."""
        with self._repo() as repo:
            return repo.find(status=status, limit=limit)

    def get(self, version: str) -> ModelManifest:
        """The manifest of ``version`` with its current status, or ModelNotFound."""
        with self._repo() as repo:
            return self._get(repo, version)

    @staticmethod
    def _get(repo: ModelVersionRepository, version: str) -> ModelManifest:
        try:
            return repo.get(version)
        except NotFound:
            raise ModelNotFound(f"unknown model version {version!r}") from None

    def production(self) -> ModelManifest | None:
        """The production model's manifest, or None before the first promotion."""
        with self._repo() as repo:
            return repo.production()

    def load(self, version: str, *, expected_spec_hash: str) -> LoadedModel:
        """Rebuild and verify ``version`` (see the module docstring for what is checked, in order)."""
        manifest = self.get(version)
        if manifest.feature_spec_hash != expected_spec_hash:
            raise FeatureSpecMismatch(
                f"model {version} was trained on feature spec {manifest.feature_spec_hash}, "
                f"but the caller computes features of spec {expected_spec_hash}"
            )
        factory = self._factory(manifest.model_type, f"load model {version} of")
        directory = self.root / version
        weights, on_disk = self.root / manifest.artifact_path, directory / MANIFEST_FILE
        for path in (weights, on_disk):
            if not path.is_file():
                raise ArtifactMissing(f"model {version}: {path} is missing")
        saved = self._read_saved_manifest(on_disk, version)
        if (saved.version, saved.artifact_sha256, saved.feature_spec_hash) != (
            manifest.version,
            manifest.artifact_sha256,
            manifest.feature_spec_hash,
        ):
            raise ArtifactCorrupt(
                f"model {version}: {on_disk} does not match the registered manifest "
                f"(version {saved.version!r}, sha256 {saved.artifact_sha256}, spec {saved.feature_spec_hash})"
            )
        blob = weights.read_bytes()
        actual = hashlib.sha256(blob).hexdigest()
        if actual != manifest.artifact_sha256:
            raise ArtifactCorrupt(
                f"model {version}: {weights} has sha256 {actual} but the manifest records "
                f"{manifest.artifact_sha256}: the file was changed or is corrupt"
            )
        model = factory(dict(manifest.params))
        _fit_state(model, _load_state(blob, version), f"model {version}")  # the bytes that were hashed
        model.eval()
        return LoadedModel(manifest=manifest, model=model)

    @staticmethod
    def _read_saved_manifest(path: Path, version: str) -> ModelManifest:
        try:
            return ModelManifest.from_json(path.read_bytes())
        except (msgspec.DecodeError, ValueError) as exc:
            raise ArtifactCorrupt(f"model {version}: {path} is not a valid manifest: {exc}") from None

    def evidence(self, version: str) -> bytes | None:
        """The gate evidence saved with ``version`` (verified against its sha256), or None if it has none."""
        manifest = self.get(version)
        sha = manifest.params.get("evidence_sha256")
        if sha is None:
            return None
        path = self.root / version / EVIDENCE_FILE
        if not path.is_file():
            raise ArtifactMissing(f"model {version}: {path} is missing")
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise ArtifactCorrupt(
                f"model {version}: {path} has sha256 {actual} but the manifest records {sha}: changed or corrupt"
            )
        return data

    def gate_decisions(self, version: str) -> builtins.list[dict[str, Any]]:
        """The gate's decisions about ``version``, newest first (``model_gate_decisions`` rows)."""
        with self._connect() as conn:
            return ModelGateRepository(conn).for_version(version)

    def load_production(self, expected_spec_hash: str) -> LoadedModel | None:
        """The verified production model, or None when no version has been promoted yet."""
        manifest = self.production()
        if manifest is None:
            return None
        return self.load(manifest.version, expected_spec_hash=expected_spec_hash)

    # ---- promote / reject -------------------------------------------------------------------------

    def promote(
        self, version: str, *, metric: str, higher_is_better: bool, max_attempts: int = 3
    ) -> PromotionDecision:
        """Make ``version`` production if it beats the production model on ``metric`` (strictly).

        With no production model yet, a candidate carrying the metric is promoted. When another
        promotion lands between our comparison and our switch (PromotionConflict), the candidate is
        compared again with the new production model, so concurrent promotions end with the best one.
        """
        for _ in range(max_attempts):
            with self._repo() as repo:
                candidate = self._get(repo, version)
                production = repo.production()
                decision = self._decide(candidate, production, metric, higher_is_better)
                if not decision.promoted:
                    return decision
                try:
                    repo.promote(version, expected_production=decision.production_version)
                except PromotionConflict:
                    continue
                return decision
        raise RegistryError(
            f"could not promote {version}: production changed {max_attempts} times while comparing"
        )

    def promote_gated(
        self,
        version: str,
        decide: Callable[[ModelManifest, ModelManifest | None], PromotionDecision],
        *,
        actor: str = "system",
        trace_id: str | None = None,
        max_attempts: int = 3,
    ) -> PromotionDecision:
        """Promote ``version`` if ``decide(candidate, production)`` says so, storing the decision.

        The decision row (``model_gate_decisions``), its audit row and the production switch commit in
        one transaction; when another promotion lands between the decision and the switch, the decision
        is taken again against the new production model (nothing of the stale one is kept). A version
        that is already production or rejected is refused without asking ``decide``.
        """
        for _ in range(max_attempts):
            with self._connect() as conn:
                repo = ModelVersionRepository(conn)
                candidate = self._get(repo, version)
                production = repo.production()
                early = self._refusal(candidate)
                decision = early or decide(candidate, production)
                expected = None if production is None else production.version
                try:
                    with conn.transaction():
                        self._record(conn, decision, candidate, production, actor, trace_id)
                        if decision.promoted:
                            repo.promote(version, expected_production=expected)
                except PromotionConflict:
                    continue
                return decision
        raise RegistryError(
            f"could not promote {version}: production changed {max_attempts} times while comparing"
        )

    @staticmethod
    def _refusal(candidate: ModelManifest) -> PromotionDecision | None:
        if candidate.status is ModelStatus.PRODUCTION:
            reason = f"{candidate.version} is already the production model"
        elif candidate.status is ModelStatus.REJECTED:
            reason = f"{candidate.version} was rejected and cannot be promoted"
        else:
            return None
        return PromotionDecision(False, candidate.version, "", True, None, None, None, reason)

    @staticmethod
    def _record(
        conn: Connection[Any],
        decision: PromotionDecision,
        candidate: ModelManifest,
        production: ModelManifest | None,
        actor: str,
        trace_id: str | None,
    ) -> None:
        gate = decision.gate or {}
        value = gate.get("candidate_value", {})
        number = decision.candidate_value if decision.candidate_value is not None else math.nan
        details = {**gate, "model_type": candidate.model_type}
        ModelGateRepository(conn).add(
            candidate.version,
            promoted=decision.promoted,
            metric=decision.metric or "-",
            candidate_value=float(value.get("value", number)),
            candidate_low=float(value.get("low", number)),
            candidate_high=float(value.get("high", number)),
            production_version=decision.production_version,
            reason=decision.reason,
            details=details,
        )
        append_sync(
            conn,
            AuditEvent(
                action=AuditAction.MODEL_PROMOTE,
                entity_type="model_version",
                entity_id=candidate.version,
                actor=actor,
                old_value=None if production is None else {"production": production.version},
                new_value={
                    "promoted": decision.promoted,
                    "model_type": candidate.model_type,
                    "metric": decision.metric,
                    "candidate_value": value or decision.candidate_value,
                    "comparisons": gate.get("comparisons", []),
                },
                reason=decision.reason,
                success=True,
                trace_id=trace_id,
            ),
        )

    @staticmethod
    def _decide(
        candidate: ModelManifest, production: ModelManifest | None, metric: str, higher_is_better: bool
    ) -> PromotionDecision:
        def decision(promoted: bool, reason: str) -> PromotionDecision:
            return PromotionDecision(
                promoted=promoted,
                version=candidate.version,
                metric=metric,
                higher_is_better=higher_is_better,
                candidate_value=candidate.metrics.get(metric),
                production_version=None if production is None else production.version,
                production_value=None if production is None else production.metrics.get(metric),
                reason=reason,
            )

        if candidate.status is ModelStatus.PRODUCTION:
            return decision(False, f"{candidate.version} is already the production model")
        if candidate.status is ModelStatus.REJECTED:
            return decision(False, f"{candidate.version} was rejected and cannot be promoted")
        cand = candidate.metrics.get(metric)
        if cand is None:
            return decision(False, f"candidate {candidate.version} has no metric {metric!r} in its manifest")
        if production is None:
            return decision(True, f"no production model yet; promoted with {metric} = {cand:.6g}")
        prod = production.metrics.get(metric)
        if prod is None:
            return decision(
                False, f"production model {production.version} has no metric {metric!r} to compare with"
            )
        better = cand > prod if higher_is_better else cand < prod
        relation = "better" if better else "not better"
        direction = "higher" if higher_is_better else "lower"
        return decision(
            better,
            f"{metric} {cand:.6g} vs production {production.version} {prod:.6g}: "
            f"{relation} ({direction} is better)",
        )

    def reject(self, version: str, reason: str) -> None:
        """Mark a version rejected and keep the reason beside its files (``rejection.json``)."""
        if not reason.strip():
            raise InvalidModelInput("reject needs a reason")
        with self._repo() as repo:
            manifest = self._get(repo, version)
            if manifest.status is ModelStatus.PRODUCTION:
                raise InvalidModelInput(
                    f"cannot reject {version}: it is the production model; promote another version first"
                )
            repo.set_status(version, ModelStatus.REJECTED)
        directory = self.root / version
        if directory.is_dir():
            record = {"version": version, "reason": reason, "rejected_ms": time.time_ns() // 1_000_000}
            _write_synced(directory / REJECTION_FILE, msgspec.json.encode(record))
