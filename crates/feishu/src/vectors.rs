//! The protocol reference's test vectors (feishu-protocol.md §6), shared by the tests of
//! every layer (crypto, envelope, CLI, emulator, server) so all of them prove the same bytes.

/// (A) Official "receive events" doc sample: key `test key`, plaintext `hello world`.
pub const A_KEY: &str = "test key";
pub const A_CIPHERTEXT: &str = "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=";
pub const A_PLAINTEXT: &str = "hello world";
/// SHA-256 of `test key`, the AES key of vector A.
pub const A_KEY_DIGEST_HEX: &str =
    "fa2bdca424f01f01ffb48df93acc35d439c7fd331a1a7fba6ac2fd83aa9ab31a";

/// (B) Go SDK `TestDecryptEvent`: key `1212121212`, a `contact.user.created_v3` envelope.
pub const B_KEY: &str = "1212121212";
pub const B_CIPHERTEXT: &str = r##"bZ3L7yh6m3Fkuffl4g+3uGjIHnhOm5fVZbKVuyT8t7tcd5ABMYm8l28/X900ZL3knZ7n+sCREu/H2WnIzft0amC7+xWqNH8o25IU63N4BnZWfHh+4hyG76QPd19vkw2bPJCx9aqxK8Nz+xqFNbk0RdgyWhmgd30jSxHtcQXAllkI7FMpGpOCteJad3bLXPDBQIV/xkCtKICCS7Z63gakpxZCLaRZ3qCXP1fapHh+LBIupxenrU6ysc7I3nHmjmKie41IiWwS5puG4zQHhVbq6KWLcgWm/3NBZOPQy53ucMu75SXA55I7jarVLZXWUcqBGrcgE3vouWbtwgZuzmoTQl0GSh5VYSVvpW992BuGxUWj0XjPYdICJm6Cr7xouNXwMcdb7N8caVdkdSZeEnswG19qSyDoQhklwzNGW0yiaayulBqJNjfge/G5V3401c2XaIuAeEIo+QQ4RSNpRGfnHkbu/j55FGQAGWjpuBNaIwZbaUoVP3NkGP+vM5rpEDe3sL2GN+Xsd+g9yBs7FqdMV8mXTGgLjCqjrPrke5/km76Q3Pe6KPs2YexMRG4MkSx3xUTzZnNn7zIzShPcjeSwBd2pxk6ht5N+fzueZdxl6Oo="##;
pub const B_PLAINTEXT: &str = r##"{"schema":"2.0","header":{"event_id":"f7984f25108f8137722bb63cee927e66","event_type":"contact.user.created_v3","app_id":"cli_xxxxxxxx","tenant_key":"xxxxxxx","create_time":"1603977298000000","token":"v"},"event":{"object":{"open_id":"ou_7dab8a3d3cdcc9da365777c7ad535d62","union_id":"on_576833b917gda3d939b9a3c2d53e72c8","user_id":"e33ggbyz","name":"张三","employee_no":"employee_no"}},"challenge":"1212","type":"url_verification"}"##;

/// (C) Java SDK `TestDecryptor`: same key, `"type":"url_verification1"`.
pub const C_KEY: &str = "1212121212";
pub const C_CIPHERTEXT: &str = r##"4T4ivT/PR2APX9OYkhRKtu54s1rtIpj9xJU69Hs1yWQ/1RutbufsBs9xjx5YC3u/0hMRF49sN0kevQiEL8iB3bVEdpfyJXzXGDfKUjvKQTmG64GbMdTW6qRpadVPem3f32jHuT6fc+4TRg4BigwoUId+l/D+vcIwu3mDgAEbaqzWfmvccmpiRMfQbh9JhdK/akmrRjo/CXPLM+hZciFXJMSpKueV3SjZJoSls5y0ZTHC8zak/Mp/DSl1wa4mYe5laP367Lnl4ylGiXBKx3Ku29oWv79rYcO/5QT63H4rkl8bwYmAzScpb2KNnV11L3xiDzJp3hFdfXczUvm93FXu4Lw8eDAsRzIWCccKrqHh0UvtDJD95tNn6LvYew4+Xbk1RD4k7UzWJS9AMobOK778NLNxfQ+Kn7MKzBHilXnSIVY5V+dcsOOdfqJviW4yWmT73JHYKq1qJip7Cw7lbkmRMUmettUwdVFWxeXH6iTex3YXCgqoriCx/MzeQhdNEycipooB/vHItRt1CF44uFWj9tf8n3TdbdH4dNMD0hw8ejHJSbEHb9HAGCugUniN8BzL9wxE959JU4cu3BKjDuIk5oS9hLR1mSc3vKBuSa3VKOE="##;
pub const C_PLAINTEXT: &str = r##"{"schema":"2.0","header":{"event_id":"f7984f25108f8137722bb63cee927e66","event_type":"contact.user.created_v3","app_id":"cli_xxxxxxxx","tenant_key":"xxxxxxx","create_time":"1603977298000000","token":"v"},"event":{"object":{"open_id":"ou_7dab8a3d3cdcc9da365777c7ad535d62","union_id":"on_576833b917gda3d939b9a3c2d53e72c8","user_id":"e33ggbyz","name":"张三","employee_no":"employee_no"}},"challenge":"1212","type":"url_verification1"}"##;

/// (D) Node SDK challenge test: an encrypted url_verification.
pub const D_KEY: &str = "mazhe.nerd";
pub const D_CIPHERTEXT: &str = r##"tT1xP+ovuc0T3b/rnZX3ax76exqAn0ANQ6/U45GcciC0mgNBc8JtvqOJGNAPMKpgRs2dVU1NYk9VDeqS8T4SYtU0hzNU54aS84WnxvZ3VFfDcy/RyABlNqlUiGyLDzFI0yxdCMT4KR/YEQXlt6nZi50KwRlZ+A75r645KesZuLMljezYyY8VeeXEVjPw35+e"##;
pub const D_PLAINTEXT: &str = r##"{"challenge":"5634b122-c042-4634-bc7f-b07a3c3e77ad","token":"iRdCP2WwXNBXRM3mGLqhrgch3cn0gbT6","type":"url_verification"}"##;
pub const D_VERIFICATION_TOKEN: &str = "iRdCP2WwXNBXRM3mGLqhrgch3cn0gbT6";
pub const D_CHALLENGE: &str = "5634b122-c042-4634-bc7f-b07a3c3e77ad";

/// Go SDK `mockEventReq` signature: timestamp `timestamp`, nonce `nonce`, key `1212121212`,
/// body = the (B) plaintext.
pub const GO_SDK_SIGNATURE_TIMESTAMP: &str = "timestamp";
pub const GO_SDK_SIGNATURE_NONCE: &str = "nonce";
pub const GO_SDK_SIGNATURE: &str =
    "4dca085198cb3216defc5b65b0668c1328b038a22dbadf2bc6c4fdc3d32bbc45";

/// §6.2 worked example.
pub const WORKED_KEY: &str = "feishu-test-key";
pub const WORKED_KEY_DIGEST_HEX: &str =
    "194edaa5232373c58907737a68c55f0fd9050b4885d20fbf36b217cd60c805f8";
pub const WORKED_VERIFICATION_TOKEN: &str = "vt_test_token_001";
pub const WORKED_IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// 528 bytes, a `contact.department.created_v3` envelope.
pub const WORKED_PLAINTEXT: &str = r##"{"schema":"2.0","header":{"event_id":"0f6e3f6c9b8a4d2e8f1a2b3c4d5e6f70","token":"vt_test_token_001","create_time":"1700000000123","event_type":"contact.department.created_v3","tenant_key":"2ca1d211f64f6438","app_id":"cli_a1b2c3d4e5f60718"},"event":{"object":{"name":"研发部","parent_department_id":"0","department_id":"D001","open_department_id":"od-4e6ac4d14bcd5071a37a39de902c7141","leader_user_id":"ou_7dab8a3d3cdcc9da365777c7ad535d62","chat_id":"oc_5ad11d72b830411d72b836c20","order":1000,"status":{"is_deleted":false}}}}"##;
pub const WORKED_ENCRYPT: &str = r##"AAECAwQFBgcICQoLDA0OD7bwmSxL9o5nalxOh0j3CRbVyTQ5vN+J1QXomBaNxPJC5NtBR261mkqeGTe9BdzuBfv2dp8rPgJh2lVJ3Wv9vZEZJCQJRKMefxlJ+zSlJbiG77J0dajkeG38/ZE1WjM/Z+OICqxYDjjuXTzMbbaYic4dnmQsPDO4EQdg4vOv9S1qPSwnmVpL/AxmlOC7GhMzN7PXvP2yrWMONEar/WQB2WmVsYopwnWgBO9ZJVTPXF3pgBrq2NLDMDMjtpFtzvOJhUEwm8eOrBGBpVDhtTvZAjPQvpewln/HejI4gdDwuLTRfCYk+PLn9HfA+57vxcoOVb9CFIEe5hfs9obF1dXquwb8qItDdyuWjRcJXL04vzN8u3wmzDMIxQJFvwLq5kzloTXabhthNbmCfhlRTZMj+YaiVdMc+kf6fOxyifykgEDWIMbVqcvMBdzpbiiXPPjHvJzSwga+emmaRyjKhayInT1KIOgaNPyNcs1dZ3CEnjD/532zMgCUl6d2ySdPFTl3AgUMb3quFJ+Kuum07TLM/pFaiSM5hqKXweRaslcr+JDsGBs0kQlG9khAT66h2bVMU5dYZfs/AIbgSoDVPQ0JNrfxRkbXl17lKzW2JIVPVB4mXPj/XnXqO4m1LPNB5Sws1ZjFaEWKkm2J8pbcYcQKQUKsvP3z7DkZn81mEsVxCPmP+vhwFcRGo3p204D5lNwce2YLUOMvtLe7Dau/t0Uw0uc="##;
pub const WORKED_TIMESTAMP: &str = "1700000000";
pub const WORKED_NONCE: &str = "123456789";
/// Signature of `{"encrypt":"<WORKED_ENCRYPT>"}` with the key.
pub const WORKED_SIGNATURE_ENCRYPTED: &str =
    "01aabb98f2c467d6c93930c547712a2821e40e32bed7f8a5e9ba574612ca8391";
/// Signature of the plaintext body with the empty key (no Encrypt Key configured).
pub const WORKED_SIGNATURE_PLAINTEXT: &str =
    "cfff4b5fbca5d2083c0e123ee64e87617c45056172791f369d7af8439e2a8446";
/// Encrypted url_verification with the worked key and an IV of sixteen 0xA5 bytes.
pub const WORKED_URL_VERIFICATION_IV: [u8; 16] = [0xA5; 16];
pub const WORKED_URL_VERIFICATION_PLAINTEXT: &str = r##"{"challenge":"3d8f2a10-5b7c-4e9d-a1f6-0c2b4e6d8f10","token":"vt_test_token_001","type":"url_verification"}"##;
pub const WORKED_URL_VERIFICATION_ENCRYPT: &str = r##"paWlpaWlpaWlpaWlpaWlpZs8257Xc3ttYLgIaFDabROq3Oxb7vvcE0n39+p+RWaRiKQqfZObAzMQePvzIB9NM4p9vzUyjGCmeXSWVW6C9byGNhk7XRLXMsadKYKz7nxZjOsAGU7hIS8ftHVjrWIzTNBFhWuENv2F3yQMhKZ8gCQ="##;
pub const WORKED_URL_VERIFICATION_CHALLENGE: &str = "3d8f2a10-5b7c-4e9d-a1f6-0c2b4e6d8f10";

/// §6.3 real captured delivery in plaintext mode (no Encrypt Key): 740 bytes.
pub const REAL_TRAFFIC_TIMESTAMP: &str = "1752346850";
pub const REAL_TRAFFIC_NONCE: &str = "950646929";
pub const REAL_TRAFFIC_SIGNATURE: &str =
    "885f3a96d196cb195ac9fc69c0fae353dd78ffc2b9cb13c0ecfbee52b4a8f47b";
pub const REAL_TRAFFIC_VERIFICATION_TOKEN: &str = "dFv0WkYeYKF7J4MK1c5tIeETHH6HZ34j";
pub const REAL_TRAFFIC_BODY: &str = r##"{"schema":"2.0","header":{"event_id":"1290b470b9fa072e63f8f374da25caca","token":"dFv0WkYeYKF7J4MK1c5tIeETHH6HZ34j","create_time":"1752346850837","event_type":"im.message.receive_v1","tenant_key":"13d149c56acf5740","app_id":"cli_a8f89f0647789013"},"event":{"message":{"chat_id":"oc_b4cf4d73e02ea650e86c4d2122ce1ec0","chat_type":"p2p","content":"{\"text\":\"订阅他[看]  https://supertechfans.com/cn/index.xml\"}","create_time":"1752346850599","message_id":"om_x100b481f40ebf8a80e3b6f49fa1a785","message_type":"text","update_time":"1752346850599"},"sender":{"sender_id":{"open_id":"ou_ec81f38d6e7fdce6132f4605f7a37319","union_id":"on_9d281063b0791d2e40548e25ce854886","user_id":null},"sender_type":"user","tenant_key":"13d149c56acf5740"}}}"##;
