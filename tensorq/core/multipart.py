"""S3 multipart uploads of the artifact store: start, send or presign a part, list the parts received, complete,
abort. Calls go through s3fs's own client (``call_s3``, so gevent's API worker keeps them off its hub); presigned
URLs are signed locally with botocore (SigV4, path style), naming ``s3_public_endpoint_url`` when set."""

from __future__ import annotations

import contextlib
from typing import Any

from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore

LIST_PAGE = 1000  # parts per list_parts page (S3's own maximum)


class Multipart:
    """Multipart uploads to locations of an S3 artifact store; parts are numbered from 1."""

    def __init__(self, store: ArtifactStore, settings: Settings) -> None:
        if store.local:
            raise ValueError("multipart uploads need an object store")
        self.store = store
        self.settings = settings
        self._signer: Any = None

    def _where(self, location: str) -> dict[str, str]:
        bucket, _, key = self.store.object_path(location).partition("/")
        return {"Bucket": bucket, "Key": key}

    def _call(self, method: str, **kwargs: Any) -> Any:
        with self.store.reach():
            return self.store.fs.call_s3(method, **kwargs)

    def start(self, location: str) -> str:
        """Begin a multipart upload to ``location``; its upload id."""
        return str(self._call("create_multipart_upload", **self._where(location))["UploadId"])

    def send_part(self, location: str, upload_id: str, number: int, body: bytes) -> None:
        """Store part ``number`` (a re-sent part replaces the earlier one)."""
        self._call("upload_part", **self._where(location), UploadId=upload_id, PartNumber=number, Body=body)

    def parts(self, location: str, upload_id: str) -> dict[int, dict[str, Any]]:
        """The parts received: number -> {"size", "etag"}; FileNotFoundError when the upload is gone."""
        found: dict[int, dict[str, Any]] = {}
        marker = 0
        while True:
            page = self._call(
                "list_parts",
                **self._where(location),
                UploadId=upload_id,
                MaxParts=LIST_PAGE,
                PartNumberMarker=marker,
            )
            for part in page.get("Parts", []):
                found[int(part["PartNumber"])] = {"size": int(part["Size"]), "etag": part["ETag"]}
            if not page.get("IsTruncated"):
                return found
            marker = int(page["NextPartNumberMarker"])

    def complete(self, location: str, upload_id: str, parts: dict[int, dict[str, Any]]) -> None:
        """Join ``parts`` (from ``parts``) into the object at ``location``."""
        listed = [{"PartNumber": n, "ETag": parts[n]["etag"]} for n in sorted(parts)]
        self._call(
            "complete_multipart_upload",
            **self._where(location),
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
        )

    def abort(self, location: str, upload_id: str) -> None:
        """Abort the upload and drop its parts (an upload already gone is fine)."""
        with contextlib.suppress(FileNotFoundError):
            self._call("abort_multipart_upload", **self._where(location), UploadId=upload_id)

    def part_url(self, location: str, upload_id: str, number: int, expires_s: int) -> str:
        """A presigned URL that PUTs part ``number`` straight to the store for ``expires_s`` seconds."""
        params = {**self._where(location), "UploadId": upload_id, "PartNumber": number}
        return str(self._presigner().generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_s))

    def _presigner(self) -> Any:
        """A botocore client used only to sign (no request is sent), built once."""
        if self._signer is None:
            import botocore.session
            from botocore.config import Config

            settings = self.settings
            keys: dict[str, str] = {}
            if settings.aws_access_key_id is not None and settings.aws_secret_access_key is not None:
                keys = {
                    "aws_access_key_id": settings.aws_access_key_id.get_secret_value(),
                    "aws_secret_access_key": settings.aws_secret_access_key.get_secret_value(),
                }
            self._signer = botocore.session.get_session().create_client(
                "s3",
                endpoint_url=settings.s3_public_endpoint_url or settings.s3_endpoint_url,
                region_name=settings.aws_region or "us-east-1",
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
                **keys,
            )
        return self._signer
