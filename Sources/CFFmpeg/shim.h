// The one header through which Swift sees FFmpeg (libavformat, libavcodec, libavutil, libswscale):
// Debian 12's 5.1 on the developer machines, trixie's 7.1 on the images, and newer. Every API
// difference between them is settled here or by a version check in `Media`, nowhere else.
// Function-like macros Swift cannot import become `static inline` helpers here, prefixed `cff_`,
// in the manner of GRDB's GRDBSQLite/shim.h.
#ifndef JUNCTION_CFFMPEG_SHIM_H
#define JUNCTION_CFFMPEG_SHIM_H

#include <errno.h>
#include <libavformat/avformat.h>
#include <libavformat/avio.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/mathematics.h>
#include <libswscale/swscale.h>

/// AVERROR(e): a POSIX errno as an FFmpeg status.
static inline int cff_averror(int e) { return AVERROR(e); }
/// AVERROR_EOF
static inline int cff_averror_eof(void) { return AVERROR_EOF; }
/// AVERROR_EXIT: an interrupt callback asked the call to stop.
static inline int cff_averror_exit(void) { return AVERROR_EXIT; }
/// AVERROR_INVALIDDATA
static inline int cff_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
/// AVERROR_HTTP_UNAUTHORIZED (RTSP 401 comes back as this too).
static inline int cff_averror_http_unauthorized(void) { return AVERROR_HTTP_UNAUTHORIZED; }
/// AVERROR_HTTP_FORBIDDEN
static inline int cff_averror_http_forbidden(void) { return AVERROR_HTTP_FORBIDDEN; }
/// AVERROR_HTTP_NOT_FOUND
static inline int cff_averror_http_not_found(void) { return AVERROR_HTTP_NOT_FOUND; }
/// AV_NOPTS_VALUE
static inline int64_t cff_nopts_value(void) { return AV_NOPTS_VALUE; }
/// AV_TIME_BASE_Q
static inline AVRational cff_time_base_q(void) { return AV_TIME_BASE_Q; }
/// MKTAG(a,b,c,d)
static inline unsigned int cff_mktag(char a, char b, char c, char d) { return MKTAG(a, b, c, d); }

/// SWS_BICUBIC as the `int` sws_getContext takes: FFmpeg 8 made it a member of `enum SwsFlags`,
/// which Swift imports as a struct.
static inline int cff_sws_bicubic(void) { return SWS_BICUBIC; }
/// SWS_AREA, the same way: averaging, for a keyframe scaled down to the activity index's 64×36.
static inline int cff_sws_area(void) { return SWS_AREA; }
/// A scaler kept between calls, through `void *`: FFmpeg 8 made `SwsContext` a complete type, so
/// Swift would see `UnsafeMutablePointer<SwsContext>` there and an `OpaquePointer` before.
static inline void *cff_sws_cached(void *context, int srcW, int srcH, enum AVPixelFormat srcFormat,
                                   int dstW, int dstH, enum AVPixelFormat dstFormat, int flags) {
    return sws_getCachedContext((struct SwsContext *)context, srcW, srcH, srcFormat, dstW, dstH, dstFormat, flags, NULL, NULL, NULL);
}
static inline int cff_sws_scale(void *context, const uint8_t *const src[], const int srcStride[], int srcSliceY, int srcSliceH,
                                uint8_t *const dst[], const int dstStride[]) {
    return sws_scale((struct SwsContext *)context, src, srcStride, srcSliceY, srcSliceH, dst, dstStride);
}
static inline void cff_sws_free(void *context) { sws_freeContext((struct SwsContext *)context); }

/// av_parser_init: its argument is an int up to FFmpeg 7 and an enum AVCodecID after (sid's
/// libavcodec 62); C converts either way.
static inline AVCodecParserContext *cff_parser_init(enum AVCodecID codec) { return av_parser_init(codec); }

/// av_err2str, written into a caller-provided buffer (the macro uses a compound literal).
static inline const char *cff_err2str(int errnum, char *buf, size_t size) {
    return av_make_error_string(buf, size, errnum);
}

#endif
