"""Read the one file part of a multipart/form-data body as a stream, without spooling it.

Starlette's `request.form()` spools file parts to a temporary file outside the storage directory;
this parser hands the part's bytes on as they arrive instead, so memory stays bounded.
"""

from collections.abc import AsyncIterator

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from app.errors import InvalidInput


class MultipartFileStream:
    """Iterates over the bytes of the single file part of a multipart body.

    `file_name` is the part's file name, known once the part's headers were read (that is, after
    the first chunk came out of the iterator, or at its end for an empty file).
    """

    def __init__(self, content_type: str, body: AsyncIterator[bytes]) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise InvalidInput(
                "multipart/form-data needs a boundary parameter in Content-Type",
                field="Content-Type", location="header",
            )
        self._body = body
        self.file_name: str | None = None
        self._file_parts = 0
        self._in_file_part = False
        self._pending: list[bytes] = []
        self._header_name = b""
        self._header_value = b""
        self._part_headers: dict[bytes, bytes] = {}
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
        })

    def _on_part_begin(self) -> None:
        self._part_headers = {}
        self._in_file_part = False

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._part_headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _on_headers_finished(self) -> None:
        disposition = self._part_headers.get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        if b"filename" not in options:
            return  # a plain form field: ignored
        self._file_parts += 1
        if self._file_parts > 1:
            raise InvalidInput("send exactly one file part; this body has more", field="file")
        self._in_file_part = True
        self.file_name = options[b"filename"].decode("utf-8", "replace") or None

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file_part:
            self._pending.append(data[start:end])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._body:
            self._parser.write(chunk)
            if self._pending:
                data, self._pending = b"".join(self._pending), []
                yield data
        self._parser.finalize()
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            yield data
        if self._file_parts == 0:
            raise InvalidInput("the multipart body has no file part", field="file")
