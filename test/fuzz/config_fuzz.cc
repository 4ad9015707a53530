// libFuzzer target: a configuration file's text through the loader.

#include <cstddef>
#include <cstdint>
#include <string>

#include "conf/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto result = crest::conf::loadConfigText(text, "fuzz.yaml", "/tmp");
  for (const auto& e : result.errors) (void)e.format();
  return 0;
}
