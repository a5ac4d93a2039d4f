// SHA-256 (util/sha256.h) against the FIPS 180-2 test vectors.
#include "test_utils.h"
#include "util/sha256.h"

using namespace lmquant;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_bytes(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_bytes("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  lmquant::test::TempDir tmp;
  lmquant::test::write_text(tmp.file("a"), "abc");
  EXPECT_EQ(sha256_file(tmp.file("a")), sha256_bytes("abc"));
  EXPECT_THROW(sha256_file(tmp.file("missing")), std::runtime_error);
}
