// Replays inputs through a fuzz target's LLVMFuzzerTestOneInput without
// libFuzzer, so that the normal build compiles every target and ctest runs
// each over its corpus (a target that stops building, or crashes on a known
// input, fails the suite). Sanitizers come from the build it is part of.
//
//   TARGET_replay [--marked] PATH...
//
// A PATH is a file or a folder of files. After --marked, a file holds several
// inputs separated by "\n--MARK--\n" (the h2o corpus); each is replayed with
// a first byte of 7, as scripts/fuzz seeds them. Exits 1 when no input was
// found: a corpus that moved must not pass silently.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

size_t replay(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  return 1;
}

size_t replayMarked(std::string_view text) {
  constexpr std::string_view kMark = "\n--MARK--\n";
  size_t count = 0;
  while (!text.empty()) {
    size_t end = text.find(kMark);
    std::string_view part = text.substr(0, end);
    if (!part.empty()) count += replay("\x07" + std::string(part));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + kMark.size());
  }
  return count;
}

size_t replayFile(const std::filesystem::path& path, bool marked) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return marked ? replayMarked(text.str()) : replay(text.str());
}

}  // namespace

int main(int argc, char** argv) {
  bool marked = false;
  size_t inputs = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--marked") {
      marked = true;
      continue;
    }
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg)) {
        if (entry.is_regular_file()) inputs += replayFile(entry.path(), marked);
      }
    } else if (std::filesystem::is_regular_file(arg, ec)) {
      inputs += replayFile(arg, marked);
    } else {
      std::fprintf(stderr, "replay: %s: no such file or folder\n", arg.c_str());
      return 1;
    }
  }
  std::printf("replay: %zu inputs\n", inputs);
  return inputs > 0 ? 0 : 1;
}
