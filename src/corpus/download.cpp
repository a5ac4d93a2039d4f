#include "corpus/download.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

#include "util/interrupt.h"

namespace lmquant {
namespace {

struct Sink {
  std::FILE* file = nullptr;
  const Progress* progress = nullptr;
  std::string label;
};

size_t write_cb(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  return std::fwrite(data, size, n, sink->file) * size;
}

int progress_cb(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* sink = static_cast<Sink*>(user);
  if (*sink->progress) (*sink->progress)({sink->label, now, total, "B", "", false});
  return interrupted() ? 1 : 0;  // non-zero aborts the transfer
}

}  // namespace

void download_file(const std::string& url, const std::string& dest, const Progress& progress,
                   long connect_timeout_s) {
  static const bool init = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  if (!init) throw std::runtime_error("libcurl could not be initialised");
  const std::string part = dest + ".part." + std::to_string(::getpid());
  Sink sink;
  sink.file = std::fopen(part.c_str(), "wb");
  if (!sink.file) throw std::runtime_error("cannot write " + part + " (is the cache folder writable?)");
  sink.progress = &progress;
  sink.label = "download " + dest.substr(dest.find_last_of('/') + 1);
  CURL* curl = curl_easy_init();
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, connect_timeout_s);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &sink);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  const bool closed = std::fclose(sink.file) == 0;
  if (rc != CURLE_OK || !closed || interrupted()) {
    std::remove(part.c_str());
    throw_if_interrupted("during the download of " + url + "; nothing was written to the cache");
    throw std::runtime_error("download of " + url + " failed: " +
                             (rc != CURLE_OK ? std::string(err[0] ? err : curl_easy_strerror(rc))
                                             : std::string("write error (disk full?)")));
  }
  if (progress) progress({sink.label, 0, 0, "B", "", true});
  if (std::rename(part.c_str(), dest.c_str()) != 0) {
    std::remove(part.c_str());
    throw std::runtime_error("cannot move the download into " + dest);
  }
}

}  // namespace lmquant
