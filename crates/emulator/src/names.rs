//! Word lists for realistic fake data: Chinese names with their pinyin, English given
//! names, cities, job titles, department and group names. Pure data plus a few pickers.

use rand::Rng;
use rand::seq::IndexedRandom;

/// Common surnames (百家姓, by frequency) with their pinyin.
pub const SURNAMES: &[(&str, &str)] = &[
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("高", "gao"),
    ("林", "lin"),
    ("罗", "luo"),
    ("郑", "zheng"),
    ("梁", "liang"),
    ("谢", "xie"),
    ("宋", "song"),
    ("唐", "tang"),
    ("许", "xu"),
    ("韩", "han"),
    ("冯", "feng"),
    ("邓", "deng"),
    ("曹", "cao"),
    ("彭", "peng"),
    ("曾", "zeng"),
    ("肖", "xiao"),
    ("田", "tian"),
    ("董", "dong"),
    ("袁", "yuan"),
    ("潘", "pan"),
    ("于", "yu"),
    ("蒋", "jiang"),
    ("蔡", "cai"),
    ("余", "yu"),
    ("杜", "du"),
    ("叶", "ye"),
    ("程", "cheng"),
    ("苏", "su"),
    ("魏", "wei"),
    ("吕", "lv"),
    ("丁", "ding"),
    ("任", "ren"),
    ("沈", "shen"),
    ("姚", "yao"),
    ("卢", "lu"),
    ("姜", "jiang"),
    ("崔", "cui"),
    ("钟", "zhong"),
    ("谭", "tan"),
    ("陆", "lu"),
    ("汪", "wang"),
    ("范", "fan"),
    ("金", "jin"),
    ("石", "shi"),
    ("廖", "liao"),
    ("贾", "jia"),
    ("夏", "xia"),
    ("韦", "wei"),
    ("欧阳", "ouyang"),
    ("司马", "sima"),
    ("上官", "shangguan"),
];

/// Characters used in given names, with pinyin; 0 = neutral, 1 = more often male,
/// 2 = more often female (only steers the generated gender).
pub const GIVEN_CHARS: &[(&str, &str, u8)] = &[
    ("伟", "wei", 1),
    ("芳", "fang", 2),
    ("娜", "na", 2),
    ("敏", "min", 0),
    ("静", "jing", 2),
    ("丽", "li", 2),
    ("强", "qiang", 1),
    ("磊", "lei", 1),
    ("军", "jun", 1),
    ("洋", "yang", 0),
    ("勇", "yong", 1),
    ("艳", "yan", 2),
    ("杰", "jie", 1),
    ("娟", "juan", 2),
    ("涛", "tao", 1),
    ("明", "ming", 1),
    ("超", "chao", 1),
    ("秀", "xiu", 2),
    ("霞", "xia", 2),
    ("平", "ping", 0),
    ("刚", "gang", 1),
    ("桂", "gui", 2),
    ("英", "ying", 2),
    ("华", "hua", 0),
    ("玉", "yu", 2),
    ("文", "wen", 0),
    ("辉", "hui", 1),
    ("建", "jian", 1),
    ("国", "guo", 1),
    ("子", "zi", 0),
    ("涵", "han", 2),
    ("浩", "hao", 1),
    ("宇", "yu", 1),
    ("轩", "xuan", 1),
    ("欣", "xin", 2),
    ("怡", "yi", 2),
    ("梓", "zi", 0),
    ("萱", "xuan", 2),
    ("晨", "chen", 0),
    ("博", "bo", 1),
    ("思", "si", 0),
    ("雨", "yu", 2),
    ("嘉", "jia", 0),
    ("俊", "jun", 1),
    ("佳", "jia", 2),
    ("琪", "qi", 2),
    ("一", "yi", 0),
    ("诺", "nuo", 0),
    ("若", "ruo", 2),
    ("晓", "xiao", 0),
    ("鹏", "peng", 1),
    ("飞", "fei", 1),
    ("婷", "ting", 2),
    ("雪", "xue", 2),
    ("林", "lin", 0),
    ("凯", "kai", 1),
    ("瑞", "rui", 0),
    ("泽", "ze", 1),
    ("安", "an", 0),
    ("然", "ran", 0),
    ("天", "tian", 1),
    ("乐", "le", 0),
    ("心", "xin", 2),
    ("悦", "yue", 2),
    ("远", "yuan", 1),
    ("志", "zhi", 1),
    ("慧", "hui", 2),
    ("春", "chun", 0),
    ("海", "hai", 1),
    ("峰", "feng", 1),
];

/// English given names some employees use as their English name.
pub const ENGLISH_MALE: &[&str] = &[
    "David", "Michael", "Kevin", "Jason", "Eric", "Tony", "Jack", "Leo", "Frank", "Peter",
    "Steven", "Allen", "Vincent", "Henry", "Sam", "Ryan", "Alex", "Daniel", "Chris", "Ben",
];
pub const ENGLISH_FEMALE: &[&str] = &[
    "Grace", "Amy", "Cindy", "Vivian", "Linda", "Emily", "Lily", "Sophie", "Iris", "Helen",
    "Crystal", "Tina", "Cherry", "Wendy", "Nancy", "Joy", "Coco", "Alice", "Fiona", "Sally",
];

/// `(city, country code)`: mostly mainland offices, a few abroad.
pub const CITIES: &[(&str, &str)] = &[
    ("北京", "CN"),
    ("北京", "CN"),
    ("上海", "CN"),
    ("上海", "CN"),
    ("深圳", "CN"),
    ("杭州", "CN"),
    ("广州", "CN"),
    ("成都", "CN"),
    ("武汉", "CN"),
    ("南京", "CN"),
    ("西安", "CN"),
    ("苏州", "CN"),
    ("香港", "HK"),
    ("Singapore", "SG"),
    ("Tokyo", "JP"),
    ("London", "GB"),
    ("San Francisco", "US"),
];

pub const JOB_TITLES: &[&str] = &[
    "软件工程师",
    "高级软件工程师",
    "资深工程师",
    "技术专家",
    "前端工程师",
    "后端工程师",
    "测试工程师",
    "运维工程师",
    "数据分析师",
    "产品经理",
    "高级产品经理",
    "设计师",
    "交互设计师",
    "市场专员",
    "市场经理",
    "销售代表",
    "大客户经理",
    "客户成功经理",
    "人力资源专员",
    "招聘经理",
    "财务专员",
    "会计",
    "法务顾问",
    "行政专员",
    "项目经理",
    "实习生",
    "Software Engineer",
    "Product Manager",
];

/// First-level departments: `(zh_cn, en_us)`.
pub const TOP_DEPARTMENTS: &[(&str, &str)] = &[
    ("研发部", "Engineering"),
    ("产品部", "Product"),
    ("市场部", "Marketing"),
    ("销售部", "Sales"),
    ("人力资源部", "Human Resources"),
    ("财务部", "Finance"),
    ("法务部", "Legal"),
    ("行政部", "Administration"),
    ("设计部", "Design"),
    ("运营部", "Operations"),
    ("客户服务部", "Customer Service"),
    ("数据部", "Data"),
    ("信息安全部", "Information Security"),
    ("采购部", "Procurement"),
    ("战略部", "Strategy"),
    ("公共关系部", "Public Relations"),
];

/// Sub-departments: `(zh_cn, en_us)`.
pub const SUB_DEPARTMENTS: &[(&str, &str)] = &[
    ("前端组", "Frontend"),
    ("后端组", "Backend"),
    ("基础架构组", "Infrastructure"),
    ("测试组", "Quality Assurance"),
    ("移动端组", "Mobile"),
    ("平台组", "Platform"),
    ("算法组", "Algorithms"),
    ("运维组", "Site Reliability"),
    ("华东区", "East China"),
    ("华北区", "North China"),
    ("华南区", "South China"),
    ("西南区", "Southwest China"),
    ("海外事业部", "International"),
    ("招聘组", "Recruiting"),
    ("培训组", "Training"),
    ("薪酬福利组", "Compensation & Benefits"),
    ("品牌组", "Brand"),
    ("增长组", "Growth"),
    ("渠道组", "Channels"),
    ("大客户组", "Key Accounts"),
    ("用户研究组", "User Research"),
    ("视觉设计组", "Visual Design"),
    ("内容组", "Content"),
    ("商业分析组", "Business Analytics"),
];

/// User-group names: `(zh name, description)`.
pub const GROUP_NAMES: &[(&str, &str)] = &[
    ("全体技术人员", "研发、测试与运维的所有同学"),
    ("管理层", "各部门负责人"),
    ("值班组", "节假日值班人员"),
    ("新员工", "入职三个月内的同事"),
    ("项目 Alpha", "Alpha 项目成员"),
    ("项目 Beta", "Beta 项目成员"),
    ("安全委员会", "信息安全相关事项"),
    ("读书会", "每月读书分享"),
    ("篮球俱乐部", "周三晚上篮球"),
    ("北京办公室", "北京办公室全体成员"),
    ("上海办公室", "上海办公室全体成员"),
    ("面试官", "技术面试官"),
];

/// A made-up person: the parts the user record needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// `张伟`.
    pub name: String,
    /// `Wei Zhang` or `David Zhang`.
    pub en_name: String,
    /// Lower-case ASCII `wei.zhang` / `david.zhang`, the start of the email address.
    pub email_local: String,
    /// 1 male, 2 female, 0 unknown.
    pub gender: i64,
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// A random person with a Chinese name and a matching English name.
pub fn person<R: Rng + ?Sized>(rng: &mut R) -> Person {
    let &(surname, surname_py) = SURNAMES.choose(rng).unwrap_or(&("王", "wang"));
    let len = if rng.random_bool(0.3) { 1 } else { 2 };
    let mut given = String::new();
    let mut given_py = String::new();
    let mut leaning = 0u8;
    for _ in 0..len {
        let &(ch, py, lean) = GIVEN_CHARS.choose(rng).unwrap_or(&("伟", "wei", 1));
        given.push_str(ch);
        given_py.push_str(py);
        if lean != 0 {
            leaning = lean;
        }
    }
    let gender = match (rng.random_range(0..100), leaning) {
        (0..4, _) => 0,
        (_, 1) => 1,
        (_, 2) => 2,
        _ => rng.random_range(1..=2),
    };
    let (first, email_first) = if rng.random_bool(0.35) {
        let list = if gender == 2 {
            ENGLISH_FEMALE
        } else {
            ENGLISH_MALE
        };
        let first = list.choose(rng).copied().unwrap_or("Alex");
        (first.to_owned(), first.to_ascii_lowercase())
    } else {
        (capitalise(&given_py), given_py.clone())
    };
    Person {
        name: format!("{surname}{given}"),
        en_name: format!("{first} {}", capitalise(surname_py)),
        email_local: format!("{email_first}.{surname_py}"),
        gender,
    }
}

/// Picks a `(zh, en)` pair; repeated names get a number so names stay unique
/// (`前端组2` / `Frontend 2`). `used` counts how often each base name was handed out.
pub fn unique_department_name<R: Rng + ?Sized>(
    rng: &mut R,
    top_level: bool,
    used: &mut std::collections::HashMap<&'static str, usize>,
) -> (String, String) {
    let list = if top_level {
        TOP_DEPARTMENTS
    } else {
        SUB_DEPARTMENTS
    };
    // Prefer a name not handed out yet, so small tenants look natural.
    let fresh: Vec<&(&str, &str)> = list
        .iter()
        .filter(|(zh, _)| !used.contains_key(zh))
        .collect();
    let &(zh, en) = match fresh.choose(rng) {
        Some(pair) => *pair,
        None => list.choose(rng).unwrap_or(&("部门", "Department")),
    };
    let n = used.entry(zh).or_insert(0);
    *n += 1;
    if *n == 1 {
        (zh.to_owned(), en.to_owned())
    } else {
        (format!("{zh}{n}"), format!("{en} {n}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn people_have_chinese_names_and_ascii_email_parts() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..500 {
            let p = person(&mut rng);
            assert!(p.name.chars().count() >= 2 && !p.name.is_ascii(), "{p:?}");
            assert!(p.en_name.is_ascii() && p.en_name.contains(' '), "{p:?}");
            assert!(
                p.email_local
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.'),
                "{p:?}"
            );
            assert!((0..=2).contains(&p.gender));
        }
    }

    #[test]
    fn department_names_stay_unique() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut used = std::collections::HashMap::new();
        let names: Vec<_> = (0..100)
            .map(|i| unique_department_name(&mut rng, i % 3 == 0, &mut used))
            .collect();
        let zh: std::collections::HashSet<_> = names.iter().map(|(z, _)| z).collect();
        let en: std::collections::HashSet<_> = names.iter().map(|(_, e)| e).collect();
        assert_eq!(zh.len(), 100);
        assert_eq!(en.len(), 100);
    }
}
