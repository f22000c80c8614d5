/*
 * framing.h — RFC 9112 framing rules that Debian's http-parser does not enforce.
 *
 * Debian builds http-parser without HTTP_PARSER_STRICT, so it takes any byte after a CR for the
 * LF, any two bytes after chunk data for its CRLF, "HTXP/1.1" for "HTTP/1.1", and an obs-fold
 * line as the continuation of the previous field. Every byte the parser consumes outside a message
 * body (request line, header and trailer sections, chunk-size lines and the CRLF after chunk data)
 * also goes through cl_http_framing_scan, which holds it to RFC 9112: a CR is always followed by
 * LF (§2.2), chunk data by CRLF (§7.1), the request line ends in HTTP/d.d (§3), and no line of a
 * header or trailer section starts with a space or tab (obs-fold, §5.2, rejected). A lone LF still
 * ends a line, as §2.2 allows. The bytes may come in any number of calls, split anywhere.
 */
#ifndef CL_NET_FRAMING_H
#define CL_NET_FRAMING_H

#include <stddef.h>
#include <stdint.h>

enum { CL_FR_IDLE, CL_FR_REQUEST_LINE, CL_FR_LINES };

typedef struct {
    uint8_t state;      /* CL_FR_*: CL_FR_IDLE before a request (the zero value) */
    uint8_t cr;         /* the last framing byte was a CR: an LF must come next */
    uint8_t line_start; /* the next byte starts a header, trailer or chunk-size line */
    uint8_t after_data; /* a chunk's data just ended: its CRLF comes next (set by the caller) */
    uint8_t tail_len;
    char tail[9]; /* the request line's last bytes: " HTTP/1.1" */
} cl_http_framing;

/* NULL when d[0..n) may follow what was scanned before; else why not (a static message). */
const char *cl_http_framing_scan(cl_http_framing *f, const uint8_t *d, size_t n);

#endif
