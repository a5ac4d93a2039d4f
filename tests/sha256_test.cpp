// SHA-256 (util/sha256.h) against the FIPS 180-2 test vectors.
#include "util/sha256.h"

#include "test_utils.h"

using namespace lmquant;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_bytes(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_bytes("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  lmquant::test::TempDir tmp;
  lmquant::test::write_text(tmp.file("a"), "abc");
  EXPECT_EQ(sha256_file(tmp.file("a")), sha256_bytes("abc"));
  EXPECT_THROW(sha256_file(tmp.file("missing")), std::runtime_error);
}

TEST(Md5, Rfc1321Vectors) {
  lmquant::test::TempDir tmp;
  lmquant::test::write_text(tmp.file("empty"), "");
  lmquant::test::write_text(tmp.file("abc"), "abc");
  lmquant::test::write_text(tmp.file("digest"), "message digest");
  EXPECT_EQ(md5_file(tmp.file("empty")), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5_file(tmp.file("abc")), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5_file(tmp.file("digest")), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_THROW(md5_file(tmp.file("missing")), std::runtime_error);
}

TEST(Sha1, Fips180Vectors) {
  lmquant::test::TempDir tmp;
  lmquant::test::write_text(tmp.file("empty"), "");
  lmquant::test::write_text(tmp.file("abc"), "abc");
  lmquant::test::write_text(tmp.file("two-blocks"),
                            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(sha1_file(tmp.file("empty")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(sha1_file(tmp.file("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(sha1_file(tmp.file("two-blocks")), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_THROW(sha1_file(tmp.file("missing")), std::runtime_error);
}
