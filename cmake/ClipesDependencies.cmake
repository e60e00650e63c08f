# Every third-party package clipes uses, found once. A CUDA LibTorch is picked up through
# CMAKE_PREFIX_PATH (e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch); Debian's libtorch-dev is CPU-only.
find_package(Torch REQUIRED)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(PNG REQUIRED)
find_package(pugixml REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
find_package(ICU REQUIRED COMPONENTS uc)  # Unicode lower case and NFC for the CLIP tokenizer
