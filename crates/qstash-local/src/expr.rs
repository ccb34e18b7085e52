//! `Upstash-Retry-Delay`: an arithmetic expression in `retried` giving the delay in
//! milliseconds before the next retry, e.g. `pow(2, retried) * 1000`.
//!
//! Numbers, `retried`, `+ - * / %`, parentheses and the functions `pow`, `sqrt`, `abs`, `exp`,
//! `floor`, `ceil`, `round`, `min`, `max`. Parsed once at publish (a bad expression is a 400),
//! evaluated per retry.

use std::fmt;
use std::time::Duration;

/// The longest expression accepted, in bytes.
const MAX_LEN: usize = 512;
/// The deepest nesting accepted (parentheses, calls, unary minus).
const MAX_DEPTH: usize = 32;

/// A parsed retry-delay expression.
#[derive(Clone, PartialEq)]
pub(crate) struct RetryDelay {
    text: String,
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Number(f64),
    Retried,
    Neg(Box<Node>),
    Binary(char, Box<Node>, Box<Node>),
    Call(Function, Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Function {
    Pow,
    Sqrt,
    Abs,
    Exp,
    Floor,
    Ceil,
    Round,
    Min,
    Max,
}

impl Function {
    fn from_name(name: &str) -> Option<(Self, usize)> {
        Some(match name {
            "pow" => (Self::Pow, 2),
            "sqrt" => (Self::Sqrt, 1),
            "abs" => (Self::Abs, 1),
            "exp" => (Self::Exp, 1),
            "floor" => (Self::Floor, 1),
            "ceil" => (Self::Ceil, 1),
            "round" => (Self::Round, 1),
            "min" => (Self::Min, 2),
            "max" => (Self::Max, 2),
            _ => return None,
        })
    }
}

impl fmt::Debug for RetryDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RetryDelay").field(&self.text).finish()
    }
}

impl RetryDelay {
    /// Parses `text`; the error says what is wrong, for the 400 answer.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_LEN {
            return Err(format!("longer than {MAX_LEN} bytes"));
        }
        let mut parser = Parser {
            bytes: text.as_bytes(),
            at: 0,
            depth: 0,
        };
        let root = parser.expr()?;
        parser.skip_space();
        if parser.at != parser.bytes.len() {
            return Err(format!("unexpected input at byte {}", parser.at));
        }
        Ok(Self {
            text: text.to_owned(),
            root,
        })
    }

    /// The expression as given.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The delay before the retry that follows `retried` attempts' worth of retries, capped
    /// at a day; negative or not-a-number results are no delay.
    pub(crate) fn delay(&self, retried: u32) -> Duration {
        let ms = eval(&self.root, f64::from(retried));
        if ms.is_nan() || ms <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(ms / 1000.0)
            .unwrap_or(Duration::MAX)
            .min(qstash_receiver::retry::MAX_BACKOFF)
    }
}

fn eval(node: &Node, retried: f64) -> f64 {
    match node {
        Node::Number(n) => *n,
        Node::Retried => retried,
        Node::Neg(inner) => -eval(inner, retried),
        Node::Binary(op, a, b) => {
            let (a, b) = (eval(a, retried), eval(b, retried));
            match op {
                '+' => a + b,
                '-' => a - b,
                '*' => a * b,
                '/' => a / b,
                _ => a % b,
            }
        }
        Node::Call(function, args) => {
            let arg = |i: usize| args.get(i).map_or(f64::NAN, |a| eval(a, retried));
            match function {
                Function::Pow => arg(0).powf(arg(1)),
                Function::Sqrt => arg(0).sqrt(),
                Function::Abs => arg(0).abs(),
                Function::Exp => arg(0).exp(),
                Function::Floor => arg(0).floor(),
                Function::Ceil => arg(0).ceil(),
                Function::Round => arg(0).round(),
                Function::Min => arg(0).min(arg(1)),
                Function::Max => arg(0).max(arg(1)),
            }
        }
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes.get(self.at).copied()
    }

    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(format!("nested deeper than {MAX_DEPTH}"))
        } else {
            Ok(())
        }
    }

    fn expr(&mut self) -> Result<Node, String> {
        let mut left = self.term()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.at += 1;
            let right = self.term()?;
            left = Node::Binary(char::from(op), Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Node, String> {
        let mut left = self.unary()?;
        while let Some(op @ (b'*' | b'/' | b'%')) = self.peek() {
            self.at += 1;
            let right = self.unary()?;
            left = Node::Binary(char::from(op), Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, String> {
        if self.peek() == Some(b'-') {
            self.at += 1;
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Neg(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, String> {
        match self.peek() {
            Some(b'(') => {
                self.at += 1;
                self.deeper()?;
                let inner = self.expr()?;
                self.depth -= 1;
                self.expect(b')')?;
                Ok(inner)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let start = self.at;
                while self
                    .bytes
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
                {
                    self.at += 1;
                }
                let text = std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or("");
                text.parse()
                    .map(Node::Number)
                    .map_err(|_| format!("`{text}` is not a number"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.at;
                while self
                    .bytes
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    self.at += 1;
                }
                let name = std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or("");
                if name == "retried" {
                    return Ok(Node::Retried);
                }
                let (function, arity) =
                    Function::from_name(name).ok_or_else(|| format!("unknown name `{name}`"))?;
                self.expect(b'(')?;
                self.deeper()?;
                let mut args = vec![self.expr()?];
                while self.peek() == Some(b',') {
                    self.at += 1;
                    args.push(self.expr()?);
                }
                self.depth -= 1;
                self.expect(b')')?;
                if args.len() != arity {
                    return Err(format!("`{name}` takes {arity} argument(s)"));
                }
                Ok(Node::Call(function, args))
            }
            Some(_) => Err(format!("unexpected input at byte {}", self.at)),
            None => Err("unexpected end".to_owned()),
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), String> {
        if self.peek() == Some(want) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!(
                "expected `{}` at byte {}",
                char::from(want),
                self.at
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_the_documented_examples() {
        let cases = [
            ("pow(2, retried) * 1000", [1000, 2000, 4000, 8000]),
            ("1000", [1000; 4]),
            ("(retried + 1) * 500", [500, 1000, 1500, 2000]),
            ("max(10, retried * 2000) - 10", [0, 1990, 3990, 5990]),
            ("-5 * retried", [0; 4]),
            ("sqrt(retried) * 1000", [0, 1000, 1414, 1732]),
        ];
        for (text, want) in cases {
            let expr = RetryDelay::parse(text).unwrap();
            let got: Vec<u128> = (0..4).map(|n| expr.delay(n).as_millis()).collect();
            assert_eq!(got, want, "{text}");
        }
        assert_eq!(
            RetryDelay::parse("pow(10, 99)").unwrap().delay(0),
            qstash_receiver::retry::MAX_BACKOFF
        );
        assert_eq!(
            RetryDelay::parse("1/0 - 1/0").unwrap().delay(0),
            Duration::ZERO
        );
    }

    #[test]
    fn refuses_bad_expressions() {
        let deep = "(".repeat(100) + "1" + &")".repeat(100);
        for bad in [
            "",
            "retried +",
            "pow(2)",
            "foo(1)",
            "2 ** 3",
            "1..2",
            "(1",
            "1)",
            "x",
            &deep,
        ] {
            assert!(RetryDelay::parse(bad).is_err(), "{bad}");
        }
        assert!(RetryDelay::parse(&"1+".repeat(300)).is_err());
    }
}
