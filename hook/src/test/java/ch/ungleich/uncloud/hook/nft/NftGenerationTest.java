package ch.ungleich.uncloud.hook.nft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

/** The answer parsing; the kernel side is proven in the lab (CliLibvirtTest, the no-change fast path). */
class NftGenerationTest {
  /** NFT_MSG_NEWGEN as the kernel sends it: nlmsghdr, nfgenmsg, NFTA_GEN_ID (be32), NFTA_GEN_PROC_PID, NFTA_GEN_PROC_NAME. */
  static byte[] answer(int type, long id) {
    ByteBuffer b = ByteBuffer.allocate(48).order(ByteOrder.nativeOrder());
    b.putInt(44).putShort((short) type).putShort((short) 0).putInt(1).putInt(0);
    b.put((byte) 0).put((byte) 0).putShort((short) 0);
    b.putShort((short) 8).putShort((short) 2).order(ByteOrder.BIG_ENDIAN).putInt(1234).order(ByteOrder.nativeOrder());
    b.putShort((short) 8).putShort((short) 1).order(ByteOrder.BIG_ENDIAN).putInt((int) id).order(ByteOrder.nativeOrder());
    b.putShort((short) 8).putShort((short) 3).put("nft\0".getBytes());
    return b.array();
  }

  @Test
  void readsTheGenerationIdWhereverTheAttributeIs() {
    assertEquals(42L, NftGeneration.parse(answer(10 << 8 | 15, 42), 44));
    assertEquals(0xfffffffeL, NftGeneration.parse(answer(10 << 8 | 15, 0xfffffffeL), 44), "unsigned");
  }

  @Test
  void anErrorOrAShortAnswerIsNone() {
    assertNull(NftGeneration.parse(answer(2, 42), 44), "NLMSG_ERROR");
    assertNull(NftGeneration.parse(answer(10 << 8 | 15, 42), 16));
    assertNull(NftGeneration.parse(answer(10 << 8 | 15, 42), 28), "cut before the id");
  }
}
