# SHA-1 (FIPS 180-4) in pure Python, for runtimes whose hashlib has none (compat.sha1 loads it then).


class sha1:
    """SHA-1 (FIPS 180-4) in pure Python: only ever hashes a 60-byte handshake key, so speed is moot."""

    def __init__(self, data=b""):
        self._data = bytes(data)

    def update(self, data):
        self._data += bytes(data)

    def digest(self):
        h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
        length = len(self._data)
        message = self._data + b"\x80" + b"\x00" * ((55 - length) % 64) + (length * 8).to_bytes(8, "big")
        for start in range(0, len(message), 64):
            w = [int.from_bytes(message[start + i:start + i + 4], "big") for i in range(0, 64, 4)]
            for i in range(16, 80):
                x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                w.append(((x << 1) | (x >> 31)) & 0xFFFFFFFF)
            a, b, c, d, e = h
            for i in range(80):
                if i < 20:
                    f, k = (b & c) | (~b & d), 0x5A827999
                elif i < 40:
                    f, k = b ^ c ^ d, 0x6ED9EBA1
                elif i < 60:
                    f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
                else:
                    f, k = b ^ c ^ d, 0xCA62C1D6
                rotated = ((a << 5) | (a >> 27)) & 0xFFFFFFFF
                a, b, c, d, e = (rotated + f + e + k + w[i]) & 0xFFFFFFFF, a, ((b << 30) | (b >> 2)) & 0xFFFFFFFF, c, d
            h = [(x + y) & 0xFFFFFFFF for x, y in zip(h, (a, b, c, d, e))]
        return b"".join(x.to_bytes(4, "big") for x in h)
