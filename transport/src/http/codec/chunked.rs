//! Decoding `Transfer-Encoding: chunked` bodies.

use bytes::{Buf, BytesMut};

use crate::Error;

/// The longest chunk-size line (with extensions and CRLF) accepted in a chunked
/// body, however the line arrives: whole, or cut anywhere across reads.
const MAX_CHUNK_LINE: usize = 1024;

/// Incremental decoder for `Transfer-Encoding: chunked` bodies.
#[derive(Debug, Default)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
    trailer_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

impl ChunkedDecoder {
    /// Consumes what it can from `input`, appending body bytes to `out`. Returns
    /// `Ok(true)` once the last chunk and the trailer section were read, `Ok(false)`
    /// when more input is needed. The body may not exceed `limit` bytes and the
    /// trailer section `max_trailer` bytes.
    pub(crate) fn decode(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        limit: u64,
        max_trailer: usize,
    ) -> Result<bool, Error> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(true),
                ChunkState::Size => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    if !input[0].is_ascii_hexdigit() {
                        return Err(Error::malformed("invalid chunk size"));
                    }
                    match httparse::parse_chunk_size(input) {
                        // A complete line is held to the same limit as an incomplete
                        // one, so that the outcome does not depend on where reads end.
                        Ok(httparse::Status::Complete((used, _))) if used > MAX_CHUNK_LINE => {
                            return Err(Error::malformed("invalid chunk size"));
                        }
                        Ok(httparse::Status::Complete((used, size))) => {
                            input.advance(used);
                            if size == 0 {
                                self.state = ChunkState::Trailer;
                                continue;
                            }
                            let total = (out.len() as u64).saturating_add(size);
                            if total > limit {
                                return Err(Error::TooLarge {
                                    what: "body",
                                    size: total,
                                    limit,
                                });
                            }
                            out.reserve(size as usize);
                            self.state = ChunkState::Data(size);
                        }
                        // `MAX_CHUNK_LINE` bytes without the line's end: it is longer
                        Ok(httparse::Status::Partial) if input.len() < MAX_CHUNK_LINE => {
                            return Ok(false);
                        }
                        Ok(httparse::Status::Partial) | Err(_) => {
                            return Err(Error::malformed("invalid chunk size"));
                        }
                    }
                }
                ChunkState::Data(left) => {
                    let n = (input.len() as u64).min(left) as usize;
                    if n == 0 {
                        return Ok(false);
                    }
                    out.extend_from_slice(&input[..n]);
                    input.advance(n);
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => {
                    if input.len() < 2 {
                        return Ok(false);
                    }
                    if &input[..2] != b"\r\n" {
                        return Err(Error::malformed("chunk not followed by CRLF"));
                    }
                    input.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    let Some(i) = input.iter().position(|&b| b == b'\n') else {
                        if self.trailer_bytes + input.len() > max_trailer {
                            return Err(Error::TooLarge {
                                what: "trailer section",
                                size: (self.trailer_bytes + input.len()) as u64,
                                limit: max_trailer as u64,
                            });
                        }
                        return Ok(false);
                    };
                    let line_len = if i > 0 && input[i - 1] == b'\r' {
                        i - 1
                    } else {
                        i
                    };
                    input.advance(i + 1);
                    self.trailer_bytes += i + 1;
                    if self.trailer_bytes > max_trailer {
                        return Err(Error::TooLarge {
                            what: "trailer section",
                            size: self.trailer_bytes as u64,
                            limit: max_trailer as u64,
                        });
                    }
                    if line_len == 0 {
                        self.state = ChunkState::Done;
                    }
                    // trailer fields are read and dropped, as go-micro does
                }
            }
        }
    }
}
