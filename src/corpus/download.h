// HTTP(S)/file download with libcurl, into a temporary file renamed on success.
#pragma once
#include <string>

#include "util/progress.h"

namespace lmquant {

// Downloads `url` to `dest` (atomically: "<dest>.part.<pid>" then rename). Throws
// std::runtime_error with the URL and curl's reason on failure (offline, 404, ...), leaving no
// file behind. `progress` receives byte counts. Supports every scheme libcurl does (file:// too).
void download_file(const std::string& url, const std::string& dest, const Progress& progress = {},
                   long connect_timeout_s = 15);

}  // namespace lmquant
