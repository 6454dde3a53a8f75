#!/usr/bin/env bash
# Compiler shim for building mmcv 2.1.0's C++ ops against torch 2.14.
# mmcv's setup.py passes -std=c++14 / -std=c++17, but torch >= 2.10 headers need C++20
# ("#error C++20 or later compatible compiler is required"). This shim runs the real
# compiler (${MICRONET_REAL_CXX:-g++}) with any older -std=c++NN flag turned into -std=c++20,
# and without -g (debug info, which only slows the 2-core build and bloats the wheel).
args=()
for a in "$@"; do
  case "$a" in
    -std=c++11|-std=c++14|-std=c++17|-std=gnu++14|-std=gnu++17) args+=("-std=c++20") ;;
    -g) ;;
    *) args+=("$a") ;;
  esac
done
exec "${MICRONET_REAL_CXX:-g++}" "${args[@]}"
